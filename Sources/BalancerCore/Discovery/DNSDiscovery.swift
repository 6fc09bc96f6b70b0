import Glibc

/// Follows every name of the configuration on the main loop: resolves each at once, then
/// every `dns.refresh`, keeps each name's answer by `DNSNameState`'s rules, and calls
/// `onChange` (once per loop iteration, however many names changed in it) when the
/// answers in force changed. The daemon then rebuilds the service map from the file and
/// `answers` and applies it exactly as a reload does.
public final class DNSDiscovery {
    /// One name as `/stats` shows it.
    public struct Status: Sendable {
        public var name: String
        public var type: DNSName.Kind
        public var addresses: Int
        public var lastResolved: Double?
        public var lastError: String?
        public var successes: Int
        public var failures: Int
        public var notFound: Int
    }

    /// A name with more targets than this keeps the first ones (in sorted order): an answer
    /// cannot make the daemon's memory grow without bound.
    static let maximumTargets = 4096

    private final class Tracked {
        let query: DNSName.Query
        var settings: DNSSettings
        var state = DNSNameState()
        let timer: TimerWatcher
        /// Bumped for each resolution started; a completion of an older one is dropped.
        var generation = 0
        var inFlight = false

        init(query: DNSName.Query, settings: DNSSettings, timer: TimerWatcher) {
            self.query = query
            self.settings = settings
            self.timer = timer
        }
    }

    private let loop: EventLoop
    private var client: DNSClient?
    private var resolvers: ResolverConfig?
    private var tracked: [DNSName.Query: Tracked] = [:]
    /// Names in the order the configuration first names them, for `/stats`.
    private var order: [DNSName.Query] = []
    /// Fires on the next loop iteration with the changes of this one: one new service map
    /// for however many names changed together. (A zero timer, not `afterCallbacks`: that
    /// runs only once the loop next wakes, which can be a whole timer period away.)
    private let changeTimer: TimerWatcher

    /// Called on the loop when the answers in force changed.
    public var onChange: (() -> Void)?

    public init(loop: EventLoop) {
        self.loop = loop
        changeTimer = TimerWatcher(loop: loop, handler: {})
        changeTimer.handler = { [unowned self] in self.onChange?() }
    }

    /// The answer in force for every name followed.
    public var answers: [DNSName.Query: DNSRecordSet] {
        tracked.mapValues { $0.state.targets }
    }

    public var statuses: [Status] {
        order.compactMap { tracked[$0] }.map { name in
            Status(name: name.query.host, type: name.query.kind, addresses: name.state.targets.targets.count,
                   lastResolved: name.state.lastResolved, lastError: name.state.lastError,
                   successes: name.state.successes, failures: name.state.failuresTotal, notFound: name.state.notFoundTotal)
        }
    }

    /// Follows `names` from now on (at start, and after each reload): names no longer
    /// named are dropped, and every name is resolved at once (with `resolveKnown` false,
    /// only the new ones). A name used by several services is resolved once, with the
    /// shortest `refresh` and `hold` among them.
    public func follow(_ names: [DNSName], resolvers newResolvers: ResolverConfig?, resolveKnown: Bool = true) {
        var resolveKnown = resolveKnown
        if client == nil || newResolvers != resolvers {
            resolveKnown = true
            client?.close()
            client = nil
            resolvers = newResolvers
            if !names.isEmpty {
                do {
                    client = try DNSClient(loop: loop, config: newResolvers)
                } catch {
                    Log.error("dns: \(error); names are not followed")
                }
            }
        }
        var settings: [DNSName.Query: DNSSettings] = [:]
        var wanted: [DNSName.Query] = []
        for name in names {
            if let known = settings[name.query] {
                settings[name.query] = DNSSettings(refresh: min(known.refresh, name.settings.refresh), hold: min(known.hold, name.settings.hold))
            } else {
                settings[name.query] = name.settings
                wanted.append(name.query)
            }
        }
        for (query, name) in tracked where settings[query] == nil {
            name.timer.stop()
            tracked.removeValue(forKey: query)
        }
        order = wanted
        for query in wanted {
            let name: Tracked
            if let known = tracked[query] {
                name = known
                if !resolveKnown && known.settings == settings[query]! { continue }
                name.settings = settings[query]!
            } else {
                name = Tracked(query: query, settings: settings[query]!, timer: TimerWatcher(loop: loop, handler: {}))
                name.timer.handler = { [unowned self, unowned name] in self.resolve(name, force: false) }
                tracked[query] = name
            }
            name.timer.start(after: name.settings.refresh, repeating: name.settings.refresh)
            resolve(name, force: true)
        }
    }

    public func stop() {
        changeTimer.stop()
        for name in tracked.values { name.timer.stop() }
        tracked.removeAll()
        order.removeAll()
        client?.close()
        client = nil
    }

    /// Starts a resolution of `name`; unless `force`, not while one is still in flight (a
    /// silent nameserver must not pile queries up).
    private func resolve(_ name: Tracked, force: Bool) {
        guard let client, force || !name.inFlight else { return }
        name.generation += 1
        name.inFlight = true
        let generation = name.generation
        let finish: (Result<DNSRecordSet, DNSClient.Failure>) -> Void = { [weak self, weak name] result in
            guard let self, let name, name.generation == generation, self.tracked[name.query] === name else { return }
            name.inFlight = false
            self.record(result, for: name)
        }
        switch name.query.kind {
        case .addresses:
            client.addresses(of: name.query.host) { result in
                finish(result.map { DNSRecordSet($0.map { DNSRecordSet.Target(address: $0) }) })
            }
        case .service:
            client.services(of: name.query.host) { [weak self] result in
                switch result {
                case .failure(let failure): finish(.failure(failure))
                case .success(let records): self?.resolveTargets(of: records, finish)
                }
            }
        }
    }

    /// The addresses of every SRV target, each target asked once. A target that does not
    /// exist adds nothing; one whose lookup fails fails the whole answer, so that the one
    /// in force stays.
    private func resolveTargets(of records: [DNSClient.ServiceRecord], _ finish: @escaping (Result<DNSRecordSet, DNSClient.Failure>) -> Void) {
        guard let client else { return }
        let hosts = Array(Set(records.map { DNSName.normalized($0.target) })).sorted()
        var remaining = hosts.count
        var found: [String: [SocketAddress]] = [:]
        var failure: DNSClient.Failure?
        for host in hosts {
            client.addresses(of: host) { result in
                switch result {
                case .success(let addresses): found[host] = addresses
                case .failure(.notFound): break
                case .failure(let error): failure = failure ?? .failed("target \(host): \(error.reason)")
                }
                remaining -= 1
                guard remaining == 0 else { return }
                if let failure { return finish(.failure(failure)) }
                var targets: [DNSRecordSet.Target] = []
                for record in records {
                    for address in found[DNSName.normalized(record.target)] ?? [] {
                        targets.append(DNSRecordSet.Target(address: SocketAddress(family: address.family, host: address.host, port: record.port),
                                                           weight: record.weight, priority: record.priority))
                    }
                }
                finish(targets.isEmpty ? .failure(.notFound("no SRV target has an address")) : .success(DNSRecordSet(targets)))
            }
        }
    }

    private func record(_ result: Result<DNSRecordSet, DNSClient.Failure>, for name: Tracked) {
        let now = Self.unixTime()
        let events: [DNSNameState.Event]
        switch result {
        case .success(var answer):
            if answer.targets.count > Self.maximumTargets {
                Log.warning("dns: \(name.query) answered \(answer.targets.count) targets; following the first \(Self.maximumTargets)")
                answer = DNSRecordSet(Array(answer.targets.prefix(Self.maximumTargets)))
            }
            events = name.state.resolved(answer, at: now)
        case .failure(.notFound(let reason)):
            events = name.state.notFound(reason, at: now, hold: name.settings.hold)
        case .failure(.failed(let reason)):
            events = name.state.failed(reason, at: now)
        }
        for event in events { log(event, name) }
        if events.contains(where: { if case .changed = $0 { true } else { false } }) { scheduleChange() }
    }

    private func log(_ event: DNSNameState.Event, _ name: Tracked) {
        let refresh = DurationText.format(name.settings.refresh)
        switch event {
        case .changed(let from, let to):
            Log.notice("dns: \(name.query): \(from) -> \(to) target(s)")
        case .outageBegan(let reason, let kept):
            if kept == 0 {
                Log.warning("dns: \(name.query) cannot be resolved yet: \(reason); trying again every \(refresh)")
            } else {
                Log.warning("dns: \(name.query): resolution failed: \(reason); keeping the last answer (\(kept) target(s)) until it resolves again")
            }
        case .outageEnded(let failures):
            Log.notice("dns: \(name.query) resolves again after \(failures) failed attempt(s)")
        case .notFoundHeld(let reason, let kept):
            Log.warning("dns: \(name.query): \(reason); its \(kept) target(s) stay for dns.hold \(DurationText.format(name.settings.hold)) unless it comes back")
        case .removedAfterHold(let reason):
            Log.warning("dns: \(name.query): still \(reason) after dns.hold \(DurationText.format(name.settings.hold)); its endpoints are removed")
        }
    }

    private func scheduleChange() {
        if !changeTimer.isActive { changeTimer.start(after: 0) }
    }

    private static func unixTime() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
