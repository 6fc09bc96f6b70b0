/// What the keys under the etcd prefix say, validated key by key, and how they join the
/// file's services.
///
/// A value: `EtcdDiscovery` feeds it puts and deletes (from a read of the prefix or from
/// the watch), and the daemon merges it into the file's configuration before building the
/// service map. Keys:
/// - `<prefix>/services/<name>`: a whole service, as one item of the file's `services`;
/// - `<prefix>/endpoints/<service>/<id>`: one more endpoint of that service.
///
/// A value that does not validate is rejected alone: the key keeps the value it had
/// before (or stays without effect), and the rejection is listed until the key is fixed
/// or deleted.
public struct EtcdCatalog: Sendable {
    /// One rejected key, as `/stats` lists it.
    public struct Rejection: Sendable, Equatable {
        public var key: String
        public var revision: Int
        public var error: String
    }

    private enum Parsed: Sendable {
        case service(ServiceConfig)
        case endpoint(service: String, source: EndpointSource)
    }

    private struct Entry: Sendable {
        var value: String
        var revision: Int
        /// The last value of this key that validated (maybe an earlier one).
        var accepted: Parsed?
        /// Why the current value does not validate.
        var error: String?
    }

    public let prefix: String
    private var entries: [String: Entry] = [:]
    /// The keys in bytewise order, kept sorted as keys come and go (a merge runs on every
    /// change; sorting a thousand keys each time would cost more than the change).
    private var sortedKeys: [String] = []
    /// The file's `defaults`, which services from etcd inherit.
    private var template: ServiceConfig

    public init(prefix: String, template: ServiceConfig) {
        self.prefix = prefix
        self.template = template
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// A key was put (or read) with `value` at `revision`. Returns whether the value
    /// validated, or nil when the key already had it.
    @discardableResult
    public mutating func put(key: String, value: String, revision: Int) -> Bool? {
        if let known = entries[key], known.value == value, known.revision == revision { return nil }
        var entry = entries[key] ?? Entry(value: value, revision: revision)
        entry.value = value
        entry.revision = revision
        switch parse(key: key, value: value, revision: revision) {
        case .success(let parsed):
            entry.accepted = parsed
            entry.error = nil
        case .failure(let invalid):
            entry.error = invalid.reason
        }
        if entries.updateValue(entry, forKey: key) == nil { sortedKeys.insert(key, at: insertionIndex(of: key)) }
        return entry.error == nil
    }

    public mutating func delete(key: String) {
        guard entries.removeValue(forKey: key) != nil else { return }
        let index = insertionIndex(of: key)
        if index < sortedKeys.count, sortedKeys[index] == key { sortedKeys.remove(at: index) }
    }

    /// Where `key` is, or would go, in `sortedKeys` (binary search, bytewise).
    private func insertionIndex(of key: String) -> Int {
        var low = 0, high = sortedKeys.count
        while low < high {
            let middle = (low + high) / 2
            if sortedKeys[middle].utf8.lexicographicallyPrecedes(key.utf8) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Replaces everything with a fresh read of the prefix: keys not in it are deleted,
    /// keys whose revision did not change keep what they had.
    /// Returns how many keys changed, and how many of the values put did not validate.
    @discardableResult
    public mutating func replace(with values: [(key: String, value: String, revision: Int)]) -> (changed: Int, rejected: Int) {
        let present = Set(values.map(\.key))
        var changed = 0, rejected = 0
        for key in entries.keys where !present.contains(key) {
            delete(key: key)
            changed += 1
        }
        for item in values {
            guard let valid = put(key: item.key, value: item.value, revision: item.revision) else { continue }
            changed += 1
            if !valid { rejected += 1 }
        }
        return (changed, rejected)
    }

    /// The file's defaults changed (a reload): every service value is read again over them.
    public mutating func reread(template newTemplate: ServiceConfig) {
        template = newTemplate
        let all = entries
        entries = [:]
        sortedKeys = []
        for (key, entry) in all { put(key: key, value: entry.value, revision: entry.revision) }
    }

    /// `file` with the services and endpoints of etcd added, and every key rejected (by
    /// its value, or because its service clashes with another by name or listen address).
    ///
    /// Services from etcd follow the file's, in key order; endpoints from etcd follow the
    /// service's own, in key order (bytewise), so that every instance with the same file and
    /// store lists the same endpoints in the same order.
    public func merged(into file: Config) -> (config: Config, rejected: [Rejection]) {
        var config = file
        var rejected: [Rejection] = []
        var names = Set(file.services.map(\.name))
        var listens: [ServiceConfig.ListenKey: String] = [:]
        for service in file.services { listens[service.listenKey] = service.name }
        let keys = sortedKeys
        for key in keys {
            let entry = entries[key]!
            if let error = entry.error { rejected.append(Rejection(key: key, revision: entry.revision, error: error)) }
            guard case .service(var service) = entry.accepted else { continue }
            if names.contains(service.name) {
                rejected.append(Rejection(key: key, revision: entry.revision, error: "service '\(service.name)' is already defined"
                                          + (file.services.contains { $0.name == service.name } ? " in the file" : "")))
                continue
            }
            if let other = listens[service.listenKey] {
                rejected.append(Rejection(key: key, revision: entry.revision, error: "listen \(service.listen) is already the listen address of service \(other)"))
                continue
            }
            names.insert(service.name)
            listens[service.listenKey] = service.name
            service.source = "etcd"
            service.sources = service.sources.map { source in
                guard case .fixed(var endpoint) = source else { return source }
                endpoint.source = "etcd"
                return .fixed(endpoint)
            }
            for position in service.endpoints.indices { service.endpoints[position].source = "etcd" }
            config.services.append(service)
        }
        var index: [String: Int] = [:]
        for (position, service) in config.services.enumerated() { index[service.name] = position }
        for key in keys {
            guard case .endpoint(let serviceName, var source) = entries[key]!.accepted, let position = index[serviceName] else { continue }
            // Endpoint keys of a service that does not exist wait, with no effect.
            switch source {
            case .fixed(var endpoint):
                endpoint.source = "etcd"
                source = .fixed(endpoint)
                config.services[position].endpoints.append(endpoint)
            case .name(var name):
                name.settings = config.services[position].dns
                source = .name(name)
            }
            config.services[position].sources.append(source)
        }
        return (config, rejected)
    }

    private struct Invalid: Error {
        let reason: String
    }

    private func parse(key: String, value: String, revision: Int) -> Result<Parsed, Invalid> {
        let label = "\(key)@\(revision)"
        guard key.hasPrefix(prefix + "/") else { return .failure(Invalid(reason: "\(label): not under the prefix \(prefix)")) }
        let parts = key.dropFirst(prefix.count + 1).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        do throws(ConfigErrors) {
            switch (parts.first, parts.count) {
            case ("services", 2) where !parts[1].isEmpty:
                return .success(.service(try ConfigLoader.parseService(json: value, name: parts[1], template: template, label: label)))
            case ("endpoints", 3) where !parts[1].isEmpty && !parts[2].isEmpty:
                return .success(.endpoint(service: parts[1], source: try ConfigLoader.parseEndpoint(json: value, label: label)))
            default:
                return .failure(Invalid(reason: "\(label): not a key balancerd reads (\(prefix)/services/NAME or \(prefix)/endpoints/SERVICE/ID)"))
            }
        } catch {
            return .failure(Invalid(reason: error.errors.map(\.description).joined(separator: "; ")))
        }
    }
}
