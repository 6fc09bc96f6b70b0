/// YAML configurations for the end-to-end tests.
enum ConfigText {
    /// One service on 127.0.0.1:`port` in front of `endpoints`, with optional extra service
    /// keys (indented for the service) and `defaults` lines.
    static func service(port: UInt16, endpoints: [String], name: String = "web", service extra: [String] = [], defaults: [String] = [], top: [String] = [], adminPort: UInt16 = Harness.freePort()) -> String {
        var lines = ["admin:", "  listen: 127.0.0.1:\(adminPort)"]
        lines += top
        if !defaults.isEmpty { lines += ["defaults:"] + defaults.map { "  " + $0 } }
        lines += ["services:", "  - name: \(name)", "    listen: 127.0.0.1:\(port)"]
        lines += extra.map { "    " + $0 }
        lines += ["    endpoints:"] + endpoints.map { "      - \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }
}
