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

    /// Validates YAML `text` as if read from `path`. Nothing is resolved: names in
    /// endpoint lists are followed later, on the loop (see `DNSDiscovery`).
    public static func parse(_ text: String, path: String) throws(ConfigErrors) -> Config {
        let parser = ConfigParser(path: path)
        let config = parser.parseDocument(text)
        if let config, parser.errors.isEmpty { return config }
        throw ConfigErrors(errors: parser.errors)
    }
}

extension ConfigLoader {
    /// Validates the JSON value of an etcd service key as one item of the file's `services`
    /// list, over the file's `defaults` (`template`), with the same checks and messages.
    /// `name` is the key's last part; a `name` in the value must equal it. Errors carry
    /// `label` (the key and revision) in place of the file, and the value's line and column.
    public static func parseService(json: String, name: String, template: ServiceConfig, label: String) throws(ConfigErrors) -> ServiceConfig {
        let parser = ConfigParser(path: label)
        parser.allowEmptyEndpoints = true
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }) else {
            throw ConfigErrors(errors: [ConfigError(file: label, line: 1, column: 1, key: "name", message: "'\(name)' is not a valid name (letters, digits, '-' and '_')")])
        }
        guard let root = parser.composeValue(json) else { throw ConfigErrors(errors: parser.errors) }
        guard root.mapping != nil else {
            throw ConfigErrors(errors: [ConfigError(file: label, line: 1, column: 1, key: "", message: "expected a JSON object (a service, as in the file's services list)")])
        }
        var service = parser.parseService(root, key: "", template: template, requireName: false)
        if let given = service?.name, !given.isEmpty, given != name, parser.errors.isEmpty {
            throw ConfigErrors(errors: [ConfigError(file: label, line: 1, column: 1, key: "name", message: "'\(given)' differs from the key's name '\(name)'")])
        }
        service?.name = name
        if let service, parser.errors.isEmpty { return service }
        throw ConfigErrors(errors: parser.errors)
    }

    /// Validates the JSON value of an etcd endpoint key: `"host:port"` or
    /// `{"address": …, "weight": …, "maxConnections": …}`, as an entry of `endpoints`.
    public static func parseEndpoint(json: String, label: String) throws(ConfigErrors) -> EndpointSource {
        let parser = ConfigParser(path: label)
        if let root = parser.composeValue(json), let source = parser.parseEndpointEntry(root, key: "") { return source }
        throw ConfigErrors(errors: parser.errors)
    }
}

/// The validating walk over the YAML node tree. Collects errors rather than stopping at the
/// first, so one run of `--check-config` shows everything to fix.
final class ConfigParser {
    let path: String
    private(set) var errors: [ConfigError] = []

    init(path: String) {
        self.path = path
    }

    // MARK: Document

    /// One JSON (or YAML) value, for an etcd key.
    func composeValue(_ text: String) -> Node? {
        do {
            guard let node = try Yams.compose(yaml: text, .basic) else {
                fail(at: nil, "", "the value is empty")
                return nil
            }
            return node
        } catch let error as YamlError {
            report(error)
        } catch {
            fail(at: nil, "", "cannot parse JSON: \(error)")
        }
        return nil
    }

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
        let allowed: [String] = ["admin", "log", "accessLog", "workers", "limits", "resolvers", "discovery", "defaults", "services"]
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

        var resolvers: ResolverConfig? = nil
        if let node = top["resolvers"] { resolvers = parseResolvers(node.value) }

        var discovery: DiscoveryConfig? = nil
        if let node = top["discovery"] { discovery = parseDiscovery(node.value) }
        // With a store to add endpoints, a service may start with none.
        allowEmptyEndpoints = discovery?.etcd != nil

        var template = ServiceConfig(name: "", listen: AdminConfig.defaultListen)
        if let node = top["defaults"] { parseDefaults(node.value, into: &template) }

        var services: [ServiceConfig] = []
        if let node = top["services"] {
            services = parseServices(node.value, template: template)
        } else {
            fail(at: root, "services", "missing; list the services to balance")
        }

        var config = Config(path: path, admin: admin, logLevel: logLevel, workers: workers,
                            maxConnections: maxConnections, services: services, resolvers: resolvers,
                            discovery: discovery, serviceDefaults: template)
        if let node = top["accessLog"] { config.accessLog = parseAccessLog(node.value) }
        return config
    }

    private func parseAccessLog(_ node: Node) -> AccessLogConfig? {
        guard let map = fields(node, "accessLog", allowed: ["path", "format", "sample"]) else { return nil }
        var config = AccessLogConfig(path: "")
        if let f = map["format"] { config.format = enumValue(f.value, "accessLog.format", AccessLogFormat.self) ?? config.format }
        if let f = map["sample"], let text = string(f.value, "accessLog.sample") {
            if let share = Double(text), share >= 0, share <= 1 {
                config.sample = share
            } else {
                fail(at: f.value, "accessLog.sample", "'\(text)' is not a share from 0 to 1 (such as 0.1)")
            }
        }
        guard let f = map["path"] else {
            fail(at: node, "accessLog.path", "missing; give a file or stderr")
            return nil
        }
        guard let path = string(f.value, "accessLog.path") else { return nil }
        guard !path.isEmpty else {
            fail(at: f.value, "accessLog.path", "must not be empty; give a file or stderr")
            return nil
        }
        config.path = path == AccessLogConfig.stderrPath ? path : relativeToConfig(path)
        return config
    }

    private func parseDiscovery(_ node: Node) -> DiscoveryConfig? {
        guard let map = fields(node, "discovery", allowed: ["etcd"]) else { return nil }
        var config = DiscoveryConfig()
        guard let etcdNode = map["etcd"], let etcd = fields(etcdNode.value, "discovery.etcd", allowed: ["endpoints", "prefix", "dialTimeout", "tls"]) else {
            return config
        }
        var store = EtcdConfig()
        if let f = etcd["endpoints"] {
            if let list = f.value.sequence, list.count > 0 {
                for (index, item) in list.enumerated() {
                    let key = "discovery.etcd.endpoints[\(index)]"
                    guard let text = string(item, key) else { continue }
                    if EtcdConfig.isMemberURL(text) {
                        store.endpoints.append(text)
                    } else {
                        fail(at: item, key, "'\(text)' is not an etcd member URL (http://host:port or https://host:port)")
                    }
                }
            } else {
                fail(at: f.value, "discovery.etcd.endpoints", "expected a list of member URLs")
            }
        } else {
            fail(at: etcdNode.value, "discovery.etcd.endpoints", "missing; list the etcd members (http://127.0.0.1:2379)")
        }
        if let f = etcd["prefix"], let text = string(f.value, "discovery.etcd.prefix") {
            if text.hasPrefix("/") && text.count > 1 && !text.hasSuffix("/") {
                store.prefix = text
            } else {
                fail(at: f.value, "discovery.etcd.prefix", "'\(text)' must start with / and not end with one (such as /balancerd)")
            }
        }
        if let f = etcd["dialTimeout"] { store.dialTimeout = duration(f.value, "discovery.etcd.dialTimeout", allowZero: false) ?? store.dialTimeout }
        if let f = etcd["tls"], let tls = fields(f.value, "discovery.etcd.tls", allowed: ["ca", "cert", "key"]) {
            var files = EtcdConfig.TLS()
            if let v = tls["ca"] { files.ca = string(v.value, "discovery.etcd.tls.ca") }
            if let v = tls["cert"] { files.cert = string(v.value, "discovery.etcd.tls.cert") }
            if let v = tls["key"] { files.key = string(v.value, "discovery.etcd.tls.key") }
            if (files.cert == nil) != (files.key == nil) {
                fail(at: f.value, "discovery.etcd.tls", "cert and key go together")
            }
            store.tls = files
        }
        config.etcd = store
        return config
    }

    private func parseResolvers(_ node: Node) -> ResolverConfig? {
        guard let map = fields(node, "resolvers", allowed: ["nameservers", "timeout", "attempts"]) else { return nil }
        var config = ResolverConfig()
        if let f = map["nameservers"] {
            if let list = f.value.sequence, list.count > 0 {
                for (index, item) in list.enumerated() {
                    let key = "resolvers.nameservers[\(index)]"
                    guard let text = string(item, key) else { continue }
                    // host[:port]: a bare address (IPv6 with or without brackets) means port 53.
                    let withPort = SocketAddress.numeric(host: text, port: 53) != nil ? (text.contains(":") ? "[\(text)]:53" : "\(text):53") : text
                    if let address = address(item, key, text: withPort) { config.nameservers.append(address) }
                }
            } else {
                fail(at: f.value, "resolvers.nameservers", "expected a list of nameservers (host[:port])")
            }
        }
        if let f = map["timeout"] { config.timeout = duration(f.value, "resolvers.timeout", allowZero: false) ?? config.timeout }
        if let f = map["attempts"] { config.attempts = integer(f.value, "resolvers.attempts", in: 1...10) ?? config.attempts }
        return config
    }

    private func parseAdmin(_ node: Node) -> AdminConfig? {
        guard let map = fields(node, "admin", allowed: ["listen", "allowRemote", "token", "tokenFile", "stateFile"]) else { return nil }
        var admin = AdminConfig(listen: AdminConfig.defaultListen, allowRemote: false)
        if let allow = map["allowRemote"] { admin.allowRemote = boolean(allow.value, "admin.allowRemote") ?? false }
        admin.token = adminToken(map)
        if let f = map["stateFile"], let path = string(f.value, "admin.stateFile") { admin.stateFile = relativeToConfig(path) }
        if admin.allowRemote && admin.token == nil, let allow = map["allowRemote"] {
            fail(at: allow.value, "admin.allowRemote", "a remote admin port needs admin.token or admin.tokenFile")
        }
        if let listen = map["listen"], let address = address(listen.value, "admin.listen") {
            admin.listen = address
            if !address.isLoopback && !admin.allowRemote {
                fail(at: listen.value, "admin.listen",
                     "\(address) is not a loopback address; the admin port is local unless admin.allowRemote: true is set")
            }
        }
        return admin
    }

    /// `admin.token`, or the first line of `admin.tokenFile` (read now, and again on each reload).
    private func adminToken(_ map: [String: Field]) -> String? {
        if let f = map["token"], map["tokenFile"] != nil {
            fail(at: f.value, "admin.token", "set admin.token or admin.tokenFile, not both")
            return nil
        }
        let key: String
        let node: Node
        var token: String
        if let f = map["token"] {
            (key, node) = ("admin.token", f.value)
            guard let text = string(f.value, key) else { return nil }
            token = text
        } else if let f = map["tokenFile"] {
            (key, node) = ("admin.tokenFile", f.value)
            guard let path = string(f.value, key) else { return nil }
            do {
                token = try String(contentsOfFile: relativeToConfig(path), encoding: .utf8)
            } catch {
                fail(at: f.value, key, "cannot read \(path): \((error as NSError).localizedFailureReason ?? "unreadable")")
                return nil
            }
            token = String(token.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            return nil
        }
        // It travels in an HTTP header: visible ASCII only.
        guard !token.isEmpty, token.unicodeScalars.allSatisfy({ (0x21...0x7e).contains($0.value) }) else {
            fail(at: node, key, "the token must be non-empty visible ASCII, without spaces")
            return nil
        }
        return token
    }

    /// A relative path in the file is relative to the file's folder.
    private func relativeToConfig(_ path: String) -> String {
        guard !path.hasPrefix("/"), let slash = self.path.lastIndex(of: "/") else { return path }
        return String(self.path[...slash]) + path
    }

    // MARK: Defaults and services

    /// The keys a service shares with `defaults`.
    private static let timingKeys = ["connectTimeout", "idleTimeout", "drainTimeout", "retries", "healthCheck",
                                     "balance", "proxyProtocol", "queue", "dns", "sessionTimeout", "helloTimeout"]
    /// Keys that only one protocol has: set on a service of the other, they are errors.
    private static let tcpOnlyKeys = ["proxyProtocol", "queue", "idleTimeout", "serverNames", "helloTimeout"]
    private static let udpOnlyKeys = ["sessionTimeout"]

    private func parseDefaults(_ node: Node, into template: inout ServiceConfig) {
        guard let map = fields(node, "defaults", allowed: Self.timingKeys) else { return }
        applyTimings(map, prefix: "defaults", to: &template)
        template.passiveDownTime = template.healthCheck.interval
    }

    /// The keys a service shares with `defaults`. An empty `prefix` names them bare (an
    /// etcd value).
    private func applyTimings(_ map: [String: Field], prefix: String, to service: inout ServiceConfig) {
        func path(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }
        if let f = map["connectTimeout"] {
            service.connectTimeout = duration(f.value, path("connectTimeout"), allowZero: false) ?? service.connectTimeout
        }
        if let f = map["idleTimeout"] {
            service.idleTimeout = duration(f.value, path("idleTimeout"), allowZero: false) ?? service.idleTimeout
        }
        if let f = map["drainTimeout"] {
            service.drainTimeout = duration(f.value, path("drainTimeout"), allowZero: true) ?? service.drainTimeout
        }
        if let f = map["retries"] {
            service.retries = integer(f.value, path("retries"), in: 0...100) ?? service.retries
        }
        if let f = map["healthCheck"] {
            parseHealthCheck(f.value, path("healthCheck"), into: &service.healthCheck)
        }
        if let f = map["balance"] {
            service.balance = enumValue(f.value, path("balance"), BalancePolicy.self) ?? service.balance
        }
        if let f = map["proxyProtocol"] {
            // YAML reads a bare `off` as a boolean; the text is what counts here.
            service.proxyProtocol = enumValue(f.value, path("proxyProtocol"), ProxyProtocolVersion.self) ?? service.proxyProtocol
        }
        if let f = map["queue"], let queue = fields(f.value, path("queue"), allowed: ["size", "timeout"]) {
            var config = service.queue ?? QueueConfig()
            if let size = queue["size"] { config.size = integer(size.value, path("queue.size"), in: 1...1_000_000) ?? config.size }
            if let timeout = queue["timeout"] {
                config.timeout = duration(timeout.value, path("queue.timeout"), allowZero: false) ?? config.timeout
            }
            service.queue = config
        }
        if let f = map["helloTimeout"] {
            service.helloTimeout = duration(f.value, path("helloTimeout"), allowZero: false) ?? service.helloTimeout
        }
        if let f = map["sessionTimeout"] {
            service.sessionTimeout = duration(f.value, path("sessionTimeout"), allowZero: false) ?? service.sessionTimeout
        }
        if let f = map["dns"], let dns = fields(f.value, path("dns"), allowed: ["refresh", "hold"]) {
            if let refresh = dns["refresh"] {
                service.dns.refresh = duration(refresh.value, path("dns.refresh"), allowZero: false) ?? service.dns.refresh
            }
            if let hold = dns["hold"] { service.dns.hold = duration(hold.value, path("dns.hold"), allowZero: true) ?? service.dns.hold }
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
        let allowed = ["interval", "timeout", "rise", "fall", "type", "port"] + HealthCheckKind.allKeys
        guard let map = fields(node, key, allowed: allowed) else { return }
        check.enabled = true
        if let f = map["interval"] { check.interval = duration(f.value, "\(key).interval", allowZero: false) ?? check.interval }
        if let f = map["timeout"] { check.timeout = duration(f.value, "\(key).timeout", allowZero: false) ?? check.timeout }
        if let f = map["rise"] { check.rise = integer(f.value, "\(key).rise", in: 1...1000) ?? check.rise }
        if let f = map["fall"] { check.fall = integer(f.value, "\(key).fall", in: 1...1000) ?? check.fall }
        if let f = map["port"], let port = integer(f.value, "\(key).port", in: 1...65535) { check.port = UInt16(port) }
        // A new type starts from its own defaults; the same type as inherited keeps the
        // inherited keys, and the keys given here override them.
        if let f = map["type"], let type = enumValue(f.value, "\(key).type", HealthCheckType.self), type != check.kind.type {
            check.kind = HealthCheckKind(defaultFor: type)
        }
        parseCheckKeys(map, key, into: &check.kind, at: node)
    }

    /// The keys of `kind`'s type; a key of another type is an error.
    private func parseCheckKeys(_ map: [String: Field], _ key: String, into kind: inout HealthCheckKind, at node: Node) {
        let own = HealthCheckKind.keys(of: kind.type)
        for name in HealthCheckKind.allKeys where !own.contains(name) {
            guard let f = map[name] else { continue }
            let owner = HealthCheckType.allCases.first { HealthCheckKind.keys(of: $0).contains(name) }!
            fail(at: f.key, "\(key).\(name)", "applies to type \(owner.rawValue) only (this check's type is \(kind.type.rawValue))")
        }
        func text<T>(_ name: String, _ read: (String) -> Result<T, CheckTextError>) -> T? {
            guard let f = map[name], let value = string(f.value, "\(key).\(name)") else { return nil }
            switch read(value) {
            case .success(let result): return result
            case .failure(let error):
                fail(at: f.value, "\(key).\(name)", error.message)
                return nil
            }
        }
        func bytes(_ plain: String, _ hex: String) -> [UInt8]? {
            if map[plain] != nil, let f = map[hex] {
                fail(at: f.key, "\(key).\(hex)", "give \(plain) or \(hex), not both")
                return nil
            }
            return text(plain, HealthCheckText.escaped) ?? text(hex, HealthCheckText.hex)
        }
        switch kind {
        case .http(var http):
            http.path = text("path", HealthCheckText.path) ?? http.path
            http.host = text("host", HealthCheckText.host) ?? http.host
            if let f = map["expectStatus"] { http.expectStatus = statusRanges(f.value, "\(key).expectStatus") ?? http.expectStatus }
            if let f = map["expectBody"], let body = string(f.value, "\(key).expectBody") {
                if body.isEmpty { fail(at: f.value, "\(key).expectBody", "must not be empty") } else { http.expectBody = body }
            }
            kind = .http(http)
        case .sendExpect(var send, var expect):
            let before = errors.count
            send = bytes("send", "sendHex") ?? send
            expect = bytes("expect", "expectHex") ?? expect
            if send.isEmpty && expect.isEmpty && errors.count == before {
                fail(at: node, key, "type send-expect needs send (or sendHex), expect (or expectHex), or both")
            }
            kind = .sendExpect(send: send, expect: expect)
        case .tls(let serverName):
            let name = text("serverName") { DNSName.isValid($0) ? .success($0) : .failure(CheckTextError("'\($0)' is not a DNS name")) }
            kind = .tls(serverName: name ?? serverName)
        case .tcp, .redis, .postgres, .mysql:
            break
        }
    }

    /// `expectStatus`: a status or range, or a list of them.
    private func statusRanges(_ node: Node, _ key: String) -> [ClosedRange<Int>]? {
        let items = node.sequence.map(Array.init) ?? [node]
        guard !items.isEmpty else {
            fail(at: node, key, "needs at least one status or range (such as 200-399)")
            return nil
        }
        var ranges: [ClosedRange<Int>] = []
        for (index, item) in items.enumerated() {
            let itemKey = node.sequence == nil ? key : "\(key)[\(index)]"
            guard let value = string(item, itemKey) else { continue }
            switch HealthCheckText.statusRange(value) {
            case .success(let range): ranges.append(range)
            case .failure(let error): fail(at: item, itemKey, error.message)
            }
        }
        return ranges.count == items.count ? ranges : nil
    }

    private func parseServices(_ node: Node, template: ServiceConfig) -> [ServiceConfig] {
        guard let list = node.sequence else {
            fail(at: node, "services", "expected a list of services")
            return []
        }
        var services: [ServiceConfig] = []
        var names: [String: Int] = [:]
        var listens: [ServiceConfig.ListenKey: String] = [:]
        // Per shared address: the server names taken, by which service.
        var serverNameTables: [ServiceConfig.ListenKey: ServerNameTable<String>] = [:]
        for (index, item) in list.enumerated() {
            let key = "services[\(index)]"
            guard let service = parseService(item, key: key, template: template, requireName: true) else { continue }
            if !service.serverNames.isEmpty {
                var table = serverNameTables[service.listenKey] ?? ServerNameTable<String>()
                for (position, name) in service.serverNames.enumerated() where !table.add(name, service.name) {
                    let node = serverNamesNode?.sequence.flatMap { $0.count > position ? $0[position] : nil }
                    fail(at: node ?? item, "\(key).serverNames[\(position)]",
                         name == "*" ? "another service on \(service.listen) already has \"*\"" : "'\(name)' is already a server name on \(service.listen)")
                }
                serverNameTables[service.listenKey] = table
            }
            if let first = names[service.name] {
                fail(at: nameNode ?? item, "\(key).name", "'\(service.name)' is already the name of services[\(first)]")
            } else if !service.name.isEmpty {
                names[service.name] = index
            }
            if let other = listens[service.listenKey] {
                let sharing = services.filter { $0.listenKey == service.listenKey }
                if service.serverNames.isEmpty || sharing.contains(where: \.serverNames.isEmpty) {
                    fail(at: listenNode ?? item, "\(key).listen",
                         "\(service.listen) is already the listen address of service \(other) (services may share one when each has serverNames)")
                }
            } else {
                listens[service.listenKey] = service.name
            }
            services.append(service)
        }
        return services
    }

    /// Where the last `parseService` found its name and listen address, for the errors the
    /// caller reports about them.
    private var nameNode: Node?
    private var listenNode: Node?
    private var serverNamesNode: Node?
    /// With `discovery.etcd`, `endpoints: []` is allowed.
    var allowEmptyEndpoints = false

    /// One service mapping: of the file's `services` list (`key` is `services[N]`), or an
    /// etcd value (`key` is empty, and the name may come from the key instead).
    func parseService(_ item: Node, key: String, template: ServiceConfig, requireName: Bool) -> ServiceConfig? {
        let dot = key.isEmpty ? "" : "\(key)."
        let allowed = ["name", "listen", "protocol", "mode", "failback", "serverNames", "endpoints"] + Self.timingKeys
        nameNode = nil
        listenNode = nil
        serverNamesNode = nil
        guard let map = fields(item, key, allowed: allowed) else { return nil }
        var service = template

        if let f = map["name"] {
            nameNode = f.value
            if let name = string(f.value, "\(dot)name") {
                if name.isEmpty || !name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }) {
                    fail(at: f.value, "\(dot)name", "'\(name)' is not a valid name (letters, digits, '-' and '_')")
                }
                service.name = name
            }
        } else if requireName {
            fail(at: item, "\(dot)name", "missing; every service needs a unique name")
        }

        if let f = map["listen"] {
            listenNode = f.value
            if let address = address(f.value, "\(dot)listen") { service.listen = address }
        } else {
            fail(at: item, "\(dot)listen", "missing; every service needs a listen address")
        }

        if let f = map["protocol"] {
            service.transport = enumValue(f.value, "\(dot)protocol", TransportProtocol.self) ?? service.transport
        }
        if let f = map["serverNames"] {
            serverNamesNode = f.value
            if let list = f.value.sequence, list.count > 0 {
                for (index, item) in list.enumerated() {
                    guard let name = string(item, "\(dot)serverNames[\(index)]") else { continue }
                    let bare = name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
                    if name == "*" || DNSName.isValid(bare) {
                        service.serverNames.append(name)
                    } else {
                        fail(at: item, "\(dot)serverNames[\(index)]", "'\(name)' is not a server name (host, *.domain or *)")
                    }
                }
            } else {
                fail(at: f.value, "\(dot)serverNames", "expected a list of server names (host, *.domain or *)")
            }
        }
        if let f = map["mode"] { service.mode = enumValue(f.value, "\(dot)mode", FailoverMode.self) ?? service.mode }
        if let f = map["failback"] { service.failback = boolean(f.value, "\(dot)failback") ?? service.failback }
        applyTimings(map, prefix: key.isEmpty ? "" : key, to: &service)
        // What does not apply to the service's protocol: an error when the service says it,
        // ignored when inherited from defaults.
        for name in service.transport == .udp ? Self.tcpOnlyKeys : Self.udpOnlyKeys {
            if let f = map[name] {
                fail(at: f.key, "\(dot)\(name)", "does not apply to a \(service.transport.rawValue.uppercased()) service")
            }
        }
        if service.transport == .udp {
            service.proxyProtocol = .off
            service.queue = nil
        }

        if let f = map["endpoints"] {
            service.sources = parseEndpoints(f.value, "\(dot)endpoints", dns: service.dns)
            service.endpoints = service.sources.compactMap { if case .fixed(let endpoint) = $0 { endpoint } else { nil } }
        } else {
            fail(at: item, "\(dot)endpoints", "missing; a service needs at least one endpoint")
        }
        return service
    }

    /// The entries of an `endpoints:` list: `host:port` (an IP literal is one endpoint, a
    /// name stands for its A and AAAA addresses), or a mapping with `address` or `srv`,
    /// `weight` and `maxConnections`.
    private func parseEndpoints(_ node: Node, _ key: String, dns: DNSSettings) -> [EndpointSource] {
        guard let list = node.sequence else {
            fail(at: node, key, "expected a list of endpoints (host:port)")
            return []
        }
        if list.count == 0 {
            if !allowEmptyEndpoints { fail(at: node, key, "a service needs at least one endpoint (or discovery.etcd to add them)") }
            return []
        }
        var sources: [EndpointSource] = []
        var seenAddresses: Set<SocketAddress> = []
        var seenNames: Set<String> = []
        for (index, item) in list.enumerated() {
            let itemKey = "\(key)[\(index)]"
            guard var source = parseEndpointEntry(item, key: itemKey) else { continue }
            let entryNode = entryNodeFound ?? item
            switch source {
            case .fixed(let endpoint):
                if !seenAddresses.insert(endpoint.address).inserted {
                    fail(at: entryNode, itemKey, "\(endpoint.name) is listed twice")
                    continue
                }
            case .name(var name):
                if !seenNames.insert(name.label).inserted {
                    fail(at: entryNode, itemKey, "\(name.label.dropFirst(4)) is listed twice")
                    continue
                }
                name.settings = dns
                source = .name(name)
            }
            sources.append(source)
        }
        return sources
    }

    /// Where the last `parseEndpointEntry` found its address, for the caller's errors.
    private var entryNodeFound: Node?

    /// One entry of an endpoint list: `host:port`, or a mapping with `address` or `srv`,
    /// `weight` and `maxConnections`.
    func parseEndpointEntry(_ item: Node, key itemKey: String) -> EndpointSource? {
        let dot = itemKey.isEmpty ? "" : "\(itemKey)."
        entryNodeFound = nil
        guard item.mapping != nil else {
            entryNodeFound = item
            return endpointSource(item, itemKey)
        }
        // Long form: address or srv, weight, maxConnections.
        guard let map = fields(item, itemKey, allowed: ["address", "srv", "weight", "maxConnections"]) else { return nil }
        var weight: Int?
        var limit: Int?
        if let f = map["weight"] { weight = integer(f.value, "\(dot)weight", in: 1...256) }
        if let f = map["maxConnections"] { limit = integer(f.value, "\(dot)maxConnections", in: 1...100_000_000) }
        var source: EndpointSource
        switch (map["address"], map["srv"]) {
        case (let address?, nil):
            entryNodeFound = address.value
            guard let parsed = endpointSource(address.value, "\(dot)address") else { return nil }
            source = parsed
        case (nil, let srv?):
            entryNodeFound = srv.value
            guard let text = string(srv.value, "\(dot)srv") else { return nil }
            guard DNSName.isValid(text) else {
                fail(at: srv.value, "\(dot)srv", "'\(text)' is not a DNS name (such as _http._tcp.web.default.svc.cluster.local)")
                return nil
            }
            source = .name(DNSName(kind: .service, host: text))
        case (.some, .some):
            fail(at: item, itemKey, "give address or srv, not both")
            return nil
        case (nil, nil):
            fail(at: item, "\(dot)address", "missing; an endpoint needs host:port (or srv: NAME)")
            return nil
        }
        switch source {
        case .fixed(var endpoint):
            endpoint.weight = weight ?? 1
            endpoint.maxConnections = limit
            source = .fixed(endpoint)
        case .name(var name):
            name.weight = weight
            name.maxConnections = limit
            source = .name(name)
        }
        return source
    }

    /// `host:port`: an IP literal is a fixed endpoint, anything else a name to follow.
    private func endpointSource(_ node: Node, _ key: String) -> EndpointSource? {
        guard let text = string(node, key), let (host, port, bracketed) = hostAndPort(node, key, text: text) else { return nil }
        if let literal = SocketAddress.numeric(host: host, port: port) {
            if bracketed && literal.family != .ipv6 {
                fail(at: node, key, "'\(host)' is not an IPv6 address")
                return nil
            }
            return .fixed(EndpointConfig(name: text, address: literal))
        }
        guard !bracketed else {
            fail(at: node, key, "'\(host)' is not an IPv6 address")
            return nil
        }
        guard DNSName.isValid(host) else {
            fail(at: node, key, "'\(host)' is neither an IP address nor a DNS name")
            return nil
        }
        return .name(DNSName(kind: .addresses, host: host, port: port))
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

    /// Splits `host:port` / `[v6]:port` and checks the port.
    private func hostAndPort(_ node: Node, _ key: String, text: String) -> (host: String, port: UInt16, bracketed: Bool)? {
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
        return (parts.host, UInt16(number), parts.bracketed)
    }

    /// A local or nameserver address: an IP literal, or `localhost` (127.0.0.1). Other
    /// names are refused here: resolving them would mean a blocking lookup on the loop at
    /// every reload, and a listen address is the host's own anyway.
    private func address(_ node: Node, _ key: String, text: String? = nil) -> SocketAddress? {
        guard let text = text ?? string(node, key), let (host, port, bracketed) = hostAndPort(node, key, text: text) else { return nil }
        if let literal = SocketAddress.numeric(host: host, port: port) {
            if bracketed && literal.family != .ipv6 {
                fail(at: node, key, "'\(host)' is not an IPv6 address")
                return nil
            }
            return literal
        }
        if bracketed {
            fail(at: node, key, "'\(host)' is not an IPv6 address")
            return nil
        }
        if host.lowercased() == "localhost" { return SocketAddress(family: .ipv4, host: "127.0.0.1", port: port) }
        fail(at: node, key, "'\(host)' is not an IP address (names are followed for endpoints only)")
        return nil
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
