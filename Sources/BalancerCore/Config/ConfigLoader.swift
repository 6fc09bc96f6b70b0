import Foundation
import Yams

/// Reads and validates a configuration file as a whole. Nothing is used until every key
/// has been checked; every problem is reported with its file:line:column and key path.
public enum ConfigLoader {
    /// Reads `path` and validates it.
    public static func load(path: String) throws(ConfigErrors) -> Config {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "cannot read the file"
            throw ConfigErrors(errors: [ConfigError(file: path, line: 1, column: 1, key: "", message: "cannot read: \(reason)")])
        }
        return try parse(text, path: path)
    }

    /// Turns a host name into an address; the default asks the system resolver.
    public typealias Resolver = @Sendable (_ host: String, _ port: UInt16) -> Result<SocketAddress, SocketAddress.ResolveError>

    /// Validates YAML `text` as if read from `path`.
    public static func parse(_ text: String, path: String, resolver: @escaping Resolver = SocketAddress.resolve) throws(ConfigErrors) -> Config {
        let parser = ConfigParser(path: path, resolver: resolver)
        let config = parser.parseDocument(text)
        if let config, parser.errors.isEmpty { return config }
        throw ConfigErrors(errors: parser.errors)
    }
}

/// The validating walk over the YAML node tree. Collects errors rather than stopping at the
/// first, so one run of `--check-config` shows everything to fix.
final class ConfigParser {
    let path: String
    private let resolver: ConfigLoader.Resolver
    private(set) var errors: [ConfigError] = []

    init(path: String, resolver: @escaping ConfigLoader.Resolver) {
        self.path = path
        self.resolver = resolver
    }

    // MARK: Document

    func parseDocument(_ text: String) -> Config? {
        let root: Node?
        do {
            // Every value is read from its text here, so YAML's implicit typing is not needed:
            // the basic resolver skips the regular expressions that take about a fifth of the
            // time of loading 1,000 services.
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            report(error)
            return nil
        } catch {
            fail(at: nil, "", "cannot parse YAML: \(error)")
            return nil
        }
        guard let root else {
            fail(at: nil, "", "the file is empty; it needs at least a `services` list")
            return nil
        }
        let allowed: [String] = ["admin", "log", "workers", "limits", "defaults", "services"]
        guard let top = fields(root, "", allowed: allowed) else { return nil }

        var admin = AdminConfig(listen: AdminConfig.defaultListen, allowRemote: false)
        if let node = top["admin"] { admin = parseAdmin(node.value) ?? admin }

        var logLevel = LogLevel.info
        if let node = top["log"], let log = fields(node.value, "log", allowed: ["level"]), let level = log["level"] {
            logLevel = enumValue(level.value, "log.level", LogLevel.self) ?? logLevel
        }

        var workers: Int? = nil
        if let node = top["workers"] {
            if node.value.scalar?.string == "auto" {
                workers = nil
            } else {
                workers = integer(node.value, "workers", in: 1...1024, hint: "a number of event loops from 1 to 1024, or auto")
            }
        }

        var maxConnections = 100_000
        if let node = top["limits"], let limits = fields(node.value, "limits", allowed: ["maxConnections"]) {
            if let value = limits["maxConnections"] {
                maxConnections = integer(value.value, "limits.maxConnections", in: 1...100_000_000) ?? maxConnections
            }
        }

        var template = ServiceConfig(name: "", listen: AdminConfig.defaultListen)
        if let node = top["defaults"] { parseDefaults(node.value, into: &template) }

        var services: [ServiceConfig] = []
        if let node = top["services"] {
            services = parseServices(node.value, template: template)
        } else {
            fail(at: root, "services", "missing; list the services to balance")
        }

        return Config(path: path, admin: admin, logLevel: logLevel, workers: workers,
                      maxConnections: maxConnections, services: services)
    }

    private func parseAdmin(_ node: Node) -> AdminConfig? {
        guard let map = fields(node, "admin", allowed: ["listen", "allowRemote"]) else { return nil }
        var admin = AdminConfig(listen: AdminConfig.defaultListen, allowRemote: false)
        if let allow = map["allowRemote"] { admin.allowRemote = boolean(allow.value, "admin.allowRemote") ?? false }
        if let listen = map["listen"], let address = address(listen.value, "admin.listen") {
            admin.listen = address
            if !address.isLoopback && !admin.allowRemote {
                fail(at: listen.value, "admin.listen",
                     "\(address) is not a loopback address; the admin port is local unless admin.allowRemote: true is set")
            }
        }
        return admin
    }

    // MARK: Defaults and services

    /// The keys a service shares with `defaults`.
    private static let timingKeys = ["connectTimeout", "idleTimeout", "drainTimeout", "retries", "healthCheck",
                                     "balance", "proxyProtocol", "queue"]

    private func parseDefaults(_ node: Node, into template: inout ServiceConfig) {
        guard let map = fields(node, "defaults", allowed: Self.timingKeys) else { return }
        applyTimings(map, prefix: "defaults", to: &template)
        template.passiveDownTime = template.healthCheck.interval
    }

    /// The keys a service shares with `defaults`.
    private func applyTimings(_ map: [String: Field], prefix: String, to service: inout ServiceConfig) {
        if let f = map["connectTimeout"] {
            service.connectTimeout = duration(f.value, "\(prefix).connectTimeout", allowZero: false) ?? service.connectTimeout
        }
        if let f = map["idleTimeout"] {
            service.idleTimeout = duration(f.value, "\(prefix).idleTimeout", allowZero: false) ?? service.idleTimeout
        }
        if let f = map["drainTimeout"] {
            service.drainTimeout = duration(f.value, "\(prefix).drainTimeout", allowZero: true) ?? service.drainTimeout
        }
        if let f = map["retries"] {
            service.retries = integer(f.value, "\(prefix).retries", in: 0...100) ?? service.retries
        }
        if let f = map["healthCheck"] {
            parseHealthCheck(f.value, "\(prefix).healthCheck", into: &service.healthCheck)
        }
        if let f = map["balance"] {
            service.balance = enumValue(f.value, "\(prefix).balance", BalancePolicy.self) ?? service.balance
        }
        if let f = map["proxyProtocol"] {
            // YAML reads a bare `off` as a boolean; the text is what counts here.
            service.proxyProtocol = enumValue(f.value, "\(prefix).proxyProtocol", ProxyProtocolVersion.self) ?? service.proxyProtocol
        }
        if let f = map["queue"], let queue = fields(f.value, "\(prefix).queue", allowed: ["size", "timeout"]) {
            var config = service.queue ?? QueueConfig()
            if let size = queue["size"] { config.size = integer(size.value, "\(prefix).queue.size", in: 1...1_000_000) ?? config.size }
            if let timeout = queue["timeout"] {
                config.timeout = duration(timeout.value, "\(prefix).queue.timeout", allowZero: false) ?? config.timeout
            }
            service.queue = config
        }
    }

    private func parseHealthCheck(_ node: Node, _ key: String, into check: inout HealthCheckConfig) {
        if let scalar = node.scalar {
            if ["off", "false", "no"].contains(scalar.string.lowercased()) {
                check.enabled = false
            } else {
                fail(at: node, key, "expected a mapping (interval, timeout, rise, fall) or off, found '\(scalar.string)'")
            }
            return
        }
        guard let map = fields(node, key, allowed: ["interval", "timeout", "rise", "fall"]) else { return }
        check.enabled = true
        if let f = map["interval"] { check.interval = duration(f.value, "\(key).interval", allowZero: false) ?? check.interval }
        if let f = map["timeout"] { check.timeout = duration(f.value, "\(key).timeout", allowZero: false) ?? check.timeout }
        if let f = map["rise"] { check.rise = integer(f.value, "\(key).rise", in: 1...1000) ?? check.rise }
        if let f = map["fall"] { check.fall = integer(f.value, "\(key).fall", in: 1...1000) ?? check.fall }
    }

    private func parseServices(_ node: Node, template: ServiceConfig) -> [ServiceConfig] {
        guard let list = node.sequence else {
            fail(at: node, "services", "expected a list of services")
            return []
        }
        var services: [ServiceConfig] = []
        var names: [String: Int] = [:]
        var listens: [SocketAddress: String] = [:]
        for (index, item) in list.enumerated() {
            let key = "services[\(index)]"
            let allowed = ["name", "listen", "mode", "failback", "endpoints"] + Self.timingKeys
            guard let map = fields(item, key, allowed: allowed) else { continue }
            var service = template

            if let f = map["name"] {
                if let name = string(f.value, "\(key).name") {
                    if name.isEmpty || !name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }) {
                        fail(at: f.value, "\(key).name", "'\(name)' is not a valid name (letters, digits, '-' and '_')")
                    } else if let first = names[name] {
                        fail(at: f.value, "\(key).name", "'\(name)' is already the name of services[\(first)]")
                    } else {
                        names[name] = index
                    }
                    service.name = name
                }
            } else {
                fail(at: item, "\(key).name", "missing; every service needs a unique name")
            }

            if let f = map["listen"] {
                if let address = address(f.value, "\(key).listen") {
                    if let other = listens[address] {
                        fail(at: f.value, "\(key).listen", "\(address) is already the listen address of service \(other)")
                    } else {
                        listens[address] = service.name
                    }
                    service.listen = address
                }
            } else {
                fail(at: item, "\(key).listen", "missing; every service needs a listen address")
            }

            if let f = map["mode"] { service.mode = enumValue(f.value, "\(key).mode", FailoverMode.self) ?? service.mode }
            if let f = map["failback"] { service.failback = boolean(f.value, "\(key).failback") ?? service.failback }
            applyTimings(map, prefix: key, to: &service)

            if let f = map["endpoints"] {
                service.endpoints = parseEndpoints(f.value, "\(key).endpoints")
            } else {
                fail(at: item, "\(key).endpoints", "missing; a service needs at least one endpoint")
            }
            services.append(service)
        }
        return services
    }

    private func parseEndpoints(_ node: Node, _ key: String) -> [EndpointConfig] {
        guard let list = node.sequence else {
            fail(at: node, key, "expected a list of endpoints (host:port)")
            return []
        }
        if list.count == 0 {
            fail(at: node, key, "a service needs at least one endpoint")
            return []
        }
        var endpoints: [EndpointConfig] = []
        var seen: Set<SocketAddress> = []
        for (index, item) in list.enumerated() {
            let itemKey = "\(key)[\(index)]"
            var endpoint: EndpointConfig
            var addressNode = item
            if item.mapping != nil {
                // Long form: address, weight, maxConnections.
                guard let map = fields(item, itemKey, allowed: ["address", "weight", "maxConnections"]) else { continue }
                guard let node = map["address"] else {
                    fail(at: item, "\(itemKey).address", "missing; an endpoint needs host:port")
                    continue
                }
                addressNode = node.value
                guard let text = string(node.value, "\(itemKey).address"), let address = address(node.value, "\(itemKey).address") else { continue }
                endpoint = EndpointConfig(name: text, address: address)
                if let f = map["weight"] { endpoint.weight = integer(f.value, "\(itemKey).weight", in: 1...256) ?? 1 }
                if let f = map["maxConnections"] {
                    endpoint.maxConnections = integer(f.value, "\(itemKey).maxConnections", in: 1...100_000_000)
                }
            } else {
                guard let text = string(item, itemKey), let address = address(item, itemKey) else { continue }
                endpoint = EndpointConfig(name: text, address: address)
            }
            if !seen.insert(endpoint.address).inserted {
                fail(at: addressNode, itemKey, "\(endpoint.name) is listed twice")
                continue
            }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    // MARK: Typed values

    typealias Field = (key: Node, value: Node)

    /// The keys of a mapping; unknown and repeated keys are errors at the key's position.
    private func fields(_ node: Node, _ key: String, allowed: [String]) -> [String: Field]? {
        guard let mapping = node.mapping else {
            fail(at: node, key, key.isEmpty ? "expected a mapping at the top of the file" : "expected a mapping")
            return nil
        }
        var result: [String: Field] = [:]
        for (k, v) in mapping {
            let name = k.scalar?.string ?? ""
            let path = key.isEmpty ? name : "\(key).\(name)"
            if !allowed.contains(name) {
                fail(at: k, path, "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            } else if result[name] != nil {
                fail(at: k, path, "key given twice")
            } else {
                result[name] = (k, v)
            }
        }
        return result
    }

    private func string(_ node: Node, _ key: String) -> String? {
        guard let scalar = node.scalar else {
            fail(at: node, key, "expected a single value, found a \(node.mapping != nil ? "mapping" : "list")")
            return nil
        }
        return scalar.string
    }

    private func integer(_ node: Node, _ key: String, in range: ClosedRange<Int>, hint: String? = nil) -> Int? {
        guard let text = string(node, key) else { return nil }
        guard let value = Int(text) else {
            fail(at: node, key, "'\(text)' is not \(hint ?? "a whole number")")
            return nil
        }
        guard range.contains(value) else {
            fail(at: node, key, "\(value) is out of range (\(range.lowerBound)-\(range.upperBound))")
            return nil
        }
        return value
    }

    private func boolean(_ node: Node, _ key: String) -> Bool? {
        guard let text = string(node, key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(at: node, key, "'\(text)' is not true or false")
            return nil
        }
    }

    private func duration(_ node: Node, _ key: String, allowZero: Bool) -> Double? {
        guard let text = string(node, key) else { return nil }
        guard let seconds = DurationText.seconds(text) else {
            fail(at: node, key, "'\(text)' is not a duration (an integer with ms, s, m or h, such as 500ms or 2s)")
            return nil
        }
        if seconds == 0 && !allowZero {
            fail(at: node, key, "must be longer than 0")
            return nil
        }
        return seconds
    }

    private func enumValue<E: RawRepresentable & CaseIterable>(_ node: Node, _ key: String, _ type: E.Type) -> E? where E.RawValue == String {
        guard let text = string(node, key) else { return nil }
        if let value = E(rawValue: text) { return value }
        fail(at: node, key, "'\(text)' is not one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        return nil
    }

    /// `host:port`, `[v6]:port` or `name:port`; names are resolved now.
    private func address(_ node: Node, _ key: String) -> SocketAddress? {
        guard let text = string(node, key) else { return nil }
        guard let parts = SocketAddress.split(text), !parts.host.isEmpty else {
            fail(at: node, key, "'\(text)' is not host:port (IPv6 as [addr]:port)")
            return nil
        }
        guard let number = Int(parts.port) else {
            fail(at: node, key, "port '\(parts.port)' is not a number")
            return nil
        }
        guard (1...65535).contains(number) else {
            fail(at: node, key, "port \(number) is out of range (1-65535)")
            return nil
        }
        let port = UInt16(number)
        if parts.bracketed {
            guard let address = SocketAddress.numeric(host: parts.host, port: port), address.family == .ipv6 else {
                fail(at: node, key, "'\(parts.host)' is not an IPv6 address")
                return nil
            }
            return address
        }
        switch resolver(parts.host, port) {
        case .success(let address):
            return address
        case .failure(let error):
            fail(at: node, key, "cannot resolve '\(error.host)': \(error.reason)")
            return nil
        }
    }

    // MARK: Errors

    private func fail(at node: Node?, _ key: String, _ message: String) {
        let mark = node?.mark
        errors.append(ConfigError(file: path, line: mark?.line ?? 1, column: mark?.column ?? 1, key: key, message: message))
    }

    private func report(_ error: YamlError) {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            errors.append(ConfigError(file: path, line: mark.line, column: mark.column, key: "", message: "YAML syntax: \(problem)"))
        case .reader(let problem, _, _, _):
            errors.append(ConfigError(file: path, line: 1, column: 1, key: "", message: "cannot read YAML: \(problem)"))
        default:
            errors.append(ConfigError(file: path, line: 1, column: 1, key: "", message: "cannot parse YAML: \(error)"))
        }
    }
}
