/// A name in a service's endpoint list: `host:port` (one endpoint per A and AAAA address of
/// `host`, on `port`) or `srv: NAME` (one endpoint per SRV target address and port).
public struct DNSName: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case addresses = "A/AAAA"
        case service = "SRV"
    }

    /// What is asked of DNS: the same question for every service that names it.
    public struct Query: Sendable, Hashable, CustomStringConvertible {
        public var kind: Kind
        /// Lower-cased, without a trailing dot.
        public var host: String

        public var description: String { kind == .service ? "SRV \(host)" : host }
    }

    public var kind: Kind
    public var host: String
    /// The port of every address (`addresses`); 0 for SRV, whose records carry the port.
    public var port: UInt16
    /// When set, the weight of each endpoint of the name (SRV: instead of the record's).
    public var weight: Int?
    /// When set, the limit of each endpoint of the name.
    public var maxConnections: Int?
    /// The service's `dns:` settings.
    public var settings = DNSSettings()

    public init(kind: Kind, host: String, port: UInt16 = 0) {
        self.kind = kind
        self.host = Self.normalized(host)
        self.port = port
    }

    public var query: Query { Query(kind: kind, host: host) }

    /// `source` in `/stats`: `dns:NAME:PORT` or `srv:NAME`.
    public var label: String { kind == .service ? "srv:\(host)" : "dns:\(host):\(port)" }

    /// Names compare case-insensitively and without the root's trailing dot.
    public static func normalized(_ host: String) -> String {
        var text = host.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// Whether `host` can be a DNS name: dot-separated labels of letters, digits, `-` and
    /// `_` (SRV's `_http._tcp`), 1-63 characters each, 253 in all.
    public static func isValid(_ host: String) -> Bool {
        let text = host.hasSuffix(".") ? String(host.dropLast()) : host
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
        }
    }
}
