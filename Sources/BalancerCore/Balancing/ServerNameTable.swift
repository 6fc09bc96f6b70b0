/// Chooses among the services sharing one listen address by the TLS server name a client
/// asks for: an exact name first, then the longest `*.` suffix, then `"*"`.
///
/// Names match case-insensitively and a trailing dot is ignored, in the configuration as
/// in the hello. `*.shop.example.com` matches every name ending in `.shop.example.com`, at
/// any depth, and not `shop.example.com` itself (as nginx's `server_name` does).
public struct ServerNameTable<Value>: @unchecked Sendable {
    private var exact: [String: Value] = [:]
    /// Suffixes with their leading dot (`.shop.example.com`).
    private var suffixes: [(suffix: String, value: Value)] = []
    private var fallback: Value?

    public init() {}

    /// Adds `name` (`host`, `*.domain` or `*`) for `value`; false when it is already there.
    @discardableResult
    public mutating func add(_ name: String, _ value: Value) -> Bool {
        let name = Self.normalized(name)
        if name == "*" {
            guard fallback == nil else { return false }
            fallback = value
        } else if name.hasPrefix("*.") {
            let suffix = String(name.dropFirst())
            guard !suffixes.contains(where: { $0.suffix == suffix }) else { return false }
            suffixes.append((suffix, value))
            // Longest first, so that the first match is the longest.
            suffixes.sort { $0.suffix.count > $1.suffix.count }
        } else {
            guard exact[name] == nil else { return false }
            exact[name] = value
        }
        return true
    }

    /// The value for `serverName` (nil: the hello named none), or nil when nothing matches.
    public func lookup(_ serverName: String?) -> Value? {
        guard let serverName else { return fallback }
        let name = Self.normalized(serverName)
        if let value = exact[name] { return value }
        for entry in suffixes where name.hasSuffix(entry.suffix) && name.count > entry.suffix.count { return entry.value }
        return fallback
    }

    /// Lower case, without a trailing dot.
    public static func normalized(_ name: String) -> String {
        var text = name.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
