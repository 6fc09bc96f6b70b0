/// Who may use the admin port: the bearer token, when one is set, and the one `Origin` a
/// browser may send a command from (the admin port's own, so that the status page's
/// buttons work and no other web page open in a local browser can drive it).
public struct AdminAccess: Sendable, Equatable {
    public var token: String?
    /// `http://<admin.listen>`.
    public var origin: String

    public init(token: String? = nil, listen: SocketAddress = AdminConfig.defaultListen) {
        self.token = token
        origin = "http://\(listen)"
    }

    public init(_ admin: AdminConfig) {
        self.init(token: admin.token, listen: admin.listen)
    }

    /// 401 when a token is set and `request` does not carry it. `GET /healthz` (for probes)
    /// and `GET /` (the status page, which holds no figures and asks for the token itself)
    /// need none.
    func unauthorized(_ request: AdminRequest) -> AdminResponse? {
        guard let token else { return nil }
        if request.method == "GET" && (request.path == "/healthz" || request.path == "/") { return nil }
        let prefix = "Bearer "
        if let header = request.authorization, header.hasPrefix(prefix),
           Self.constantTimeEquals(Array(header.utf8.dropFirst(prefix.utf8.count)), Array(token.utf8)) {
            return nil
        }
        return .error(401, "missing or wrong bearer token", headers: ["WWW-Authenticate: Bearer realm=\"balancerd\""])
    }

    /// 403 for a command from another origin, 415 for one that is not JSON.
    func refusedCommand(_ request: AdminRequest) -> AdminResponse? {
        if let sent = request.origin, sent != origin {
            return .error(403, "commands are taken only from origin \(origin), not \(sent)")
        }
        let mediaType = request.contentType?.split(separator: ";", maxSplits: 1).first.map {
            String($0).trimmingSpaces.lowercased()
        }
        guard mediaType == "application/json" else {
            return .error(415, "a command needs Content-Type: application/json")
        }
        return nil
    }

    /// Compares in time that depends on the lengths only, not on where the bytes differ,
    /// so that timing does not leak the token byte by byte.
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count)
        if given.count != expected.count { difference |= 1 }
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view.removeFirst() }
        while let last = view.last, last == " " || last == "\t" { view.removeLast() }
        return String(view)
    }
}
