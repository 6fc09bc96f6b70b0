import Foundation

/// What the admin port set on endpoints at run time (admin state and weight), by service
/// name and endpoint address: one more source of the service map, applied by
/// `ServiceMap.materialize` over what the file and DNS give, so that it lasts across
/// reloads and DNS updates while the endpoint exists.
public struct RuntimeOverrides: Sendable, Equatable {
    /// An endpoint's identity: its service's name and its address (`SocketAddress`'s
    /// canonical text, whatever spelling the file used).
    public struct Key: Sendable, Hashable, Comparable {
        public var service: String
        public var address: String

        public init(service: String, address: String) {
            self.service = service
            self.address = address
        }

        public static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.service, lhs.address) < (rhs.service, rhs.address)
        }
    }

    public struct Entry: Sendable, Equatable {
        /// nil: the endpoint is ready.
        public var state: AdminState?
        /// nil: the weight the file or DNS gives.
        public var weight: Int?

        var isEmpty: Bool { state == nil && weight == nil }
    }

    public private(set) var entries: [Key: Entry] = [:]

    public init() {}

    public subscript(key: Key) -> Entry? { entries[key] }

    /// Sets `key`'s admin state; `ready` forgets the override.
    public mutating func set(state: AdminState, for key: Key) {
        update(key) { $0.state = state == .ready ? nil : state }
    }

    public mutating func set(weight: Int, for key: Key) {
        update(key) { $0.weight = weight }
    }

    private mutating func update(_ key: Key, _ change: (inout Entry) -> Void) {
        var entry = entries[key] ?? Entry()
        change(&entry)
        entries[key] = entry.isEmpty ? nil : entry
    }

    /// `endpoint` of service `service` with its overrides in force.
    func applied(to endpoint: EndpointConfig, service: String) -> EndpointConfig {
        guard let entry = entries[Key(service: service, address: endpoint.address.description)] else { return endpoint }
        var endpoint = endpoint
        if let state = entry.state { endpoint.adminState = state }
        if let weight = entry.weight { endpoint.weight = weight }
        return endpoint
    }

    /// The entries whose endpoint is in `map`. A service with a name that has no answer
    /// yet (just after start) keeps all its entries: its endpoints may still come.
    public func retained(in map: Config, answers: [DNSName.Query: DNSRecordSet]) -> RuntimeOverrides {
        var present: Set<Key> = []
        var pending: Set<String> = []
        for service in map.services {
            for endpoint in service.endpoints { present.insert(Key(service: service.name, address: endpoint.address.description)) }
            for case .name(let name) in service.sources where answers[name.query] == nil { pending.insert(service.name) }
        }
        var kept = self
        kept.entries = entries.filter { present.contains($0.key) || pending.contains($0.key.service) }
        return kept
    }

    /// `ip:port` or `[v6]:port` in `SocketAddress`'s canonical spelling; nil when `text`
    /// is not such an address.
    public static func canonicalAddress(_ text: String) -> String? {
        guard let parts = SocketAddress.split(text), let port = UInt16(parts.port),
              let address = SocketAddress.numeric(host: parts.host, port: port) else { return nil }
        return address.description
    }

    // MARK: State file

    /// The state file's form: `{"version": 1, "endpoints": [{"service", "address", "state", "weight"}]}`.
    private struct File: Codable {
        struct Item: Codable {
            var service: String
            var address: String
            var state: AdminState?
            var weight: Int?
        }
        var version: Int
        var endpoints: [Item]
    }

    /// Why a state file's text was not taken.
    public enum DecodeError: Error, Sendable, CustomStringConvertible {
        case notJSON(String)
        case unsupportedVersion(Int)
        case badWeight(Key, Int)
        case badAddress(Key)

        public var description: String {
            switch self {
            case .notJSON(let reason): "not a state file: \(reason)"
            case .unsupportedVersion(let version): "version \(version) is not supported (1 is)"
            case .badWeight(let key, let weight): "\(key.service) \(key.address): weight \(weight) is out of range (1-256)"
            case .badAddress(let key): "\(key.service): '\(key.address)' is not an ip:port address"
            }
        }
    }

    /// The JSON written to the state file, sorted so that equal overrides give equal files.
    public func encoded() -> Data {
        let items = entries.keys.sorted().map { key in
            File.Item(service: key.service, address: key.address, state: entries[key]!.state, weight: entries[key]!.weight)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain strings and integers cannot fail.
        return (try? encoder.encode(File(version: 1, endpoints: items))) ?? Data()
    }

    public static func decode(_ data: Data) throws(DecodeError) -> RuntimeOverrides {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw .notJSON(String(describing: error))
        }
        guard file.version == 1 else { throw .unsupportedVersion(file.version) }
        var overrides = RuntimeOverrides()
        for item in file.endpoints {
            guard let address = Self.canonicalAddress(item.address) else {
                throw .badAddress(Key(service: item.service, address: item.address))
            }
            let key = Key(service: item.service, address: address)
            if let weight = item.weight {
                guard (1...256).contains(weight) else { throw .badWeight(key, weight) }
                overrides.set(weight: weight, for: key)
            }
            if let state = item.state { overrides.set(state: state, for: key) }
        }
        return overrides
    }
}
