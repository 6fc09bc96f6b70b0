import Synchronization

/// A running service: its configuration, its endpoints with their health, the choice of
/// endpoint for new connections, its queue and its counters.
///
/// One `Service` is shared by every worker loop, so that round-robin order, connection
/// limits, the queue and health are exact across workers. `lock` guards all of its state
/// and its endpoints' (the byte counters are atomics); it is held only for a few field
/// updates, never across I/O or a call back into a session. The main thread (worker 0)
/// alone replaces the configuration and the endpoint list, on reload.
public final class Service: @unchecked Sendable {
    public let name: String
    private let lock = Lock()

    /// A configuration in force, shared by reference: each session keeps the one it
    /// started with for its whole life (a reload applies to new connections) at the cost of
    /// one pointer, not a copy of the configuration per connection.
    final class Settings: Sendable {
        let config: ServiceConfig
        /// Whether the balancing policy needs the client's address to choose.
        let needsClientAddress: Bool
        /// Whether some endpoints come from SRV records, in priority tiers.
        let hasTiers: Bool

        init(_ config: ServiceConfig) {
            self.config = config
            needsClientAddress = config.mode == .activeActive && config.balance == .sourceIP
            hasTiers = config.endpoints.contains { $0.tier != nil }
        }
    }

    // Guarded by `lock`.
    private var current: Settings
    private var _config: ServiceConfig { current.config }
    private var _endpoints: [Endpoint]
    private var selector: EndpointSelector
    /// Reused by every choice, so that choosing allocates nothing per connection.
    private var candidates: [EndpointSelector.Candidate] = []
    /// SRV tiers: whether each endpoint is up, and the lowest priority up in each group.
    private var upScratch: [Bool] = []
    private var tierFloor: [String: Int] = [:]
    private var active = 0
    private var total = 0
    /// Client connections that could not be served at all.
    private var failed = 0
    /// Connections that waited for a free slot until `queue.timeout`.
    private var timeouts = 0
    /// How long active checks took (`balancerd_health_check_duration_seconds`).
    private var checkDurations = CheckDurationHistogram()
    /// Connections waiting for a free endpoint slot, in arrival order, from every worker.
    private var waiting: [Session] = []

    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)
    /// UDP: datagrams from clients, to clients, and dropped (no endpoint, a limit, or a
    /// socket that could not take it).
    let datagramsIn = Atomic<UInt64>(0)
    let datagramsOut = Atomic<UInt64>(0)
    let droppedDatagrams = Atomic<UInt64>(0)

    /// The outcome of choosing an endpoint for a connection.
    enum Choice {
        /// The endpoint, with a slot already taken in its `activeConnections`.
        case endpoint(Endpoint)
        /// Endpoints are up, but each one this connection may use is at its maxConnections
        /// (or earlier arrivals wait in the queue), and the queue has no room (or is off).
        case allFull
        /// As `.allFull`, and the connection now waits in the queue.
        case queued
        case noneUp
    }

    public init(config: ServiceConfig) {
        name = config.name
        current = Settings(config)
        _endpoints = config.endpoints.map(Endpoint.init)
        selector = EndpointSelector(mode: config.mode, failback: config.failback, policy: config.balance)
        selector.maglev = Self.maglevTable(for: config, reusing: nil)
    }

    /// source-ip's table for `config`'s endpoints (nil for other policies): `old` when the
    /// names and weights are the same, else built anew. Called off the service's lock, so
    /// that workers choosing endpoints never wait for a build.
    private static func maglevTable(for config: ServiceConfig, reusing old: MaglevTable?) -> MaglevTable? {
        guard config.mode == .activeActive, config.balance == .sourceIP else { return nil }
        let members = config.endpoints.map { MaglevTable.Member(name: $0.address.description, weight: $0.weight) }
        if let old, old.members == members { return old }
        return MaglevTable(members: members)
    }

    /// The configuration in force (a copy).
    public var config: ServiceConfig { lock.withLock { _config } }
    /// The endpoints in force.
    public var endpoints: [Endpoint] { lock.withLock { _endpoints } }
    public var activeConnections: Int { lock.withLock { active } }
    public var upEndpoints: Int { lock.withLock { _endpoints.count(where: { $0.isUp && !$0.isRemoved }) } }

    public func snapshot() -> ServiceSnapshot {
        lock.withLock {
            ServiceSnapshot(
                name: name, config: _config, activeConnections: active, totalConnections: total,
                failedConnections: failed, bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed),
                queued: waiting.count, queueTimeouts: timeouts,
                datagramsIn: datagramsIn.load(ordering: .relaxed), datagramsOut: datagramsOut.load(ordering: .relaxed),
                droppedDatagrams: droppedDatagrams.load(ordering: .relaxed),
                endpoints: _endpoints.map { endpoint in
                    ServiceSnapshot.Endpoint(
                        config: endpoint.config, health: endpoint.health, activeConnections: endpoint.activeConnections,
                        totalConnections: endpoint.totalConnections, failedConnects: endpoint.failedConnects,
                        bytesIn: endpoint.bytesIn.load(ordering: .relaxed), bytesOut: endpoint.bytesOut.load(ordering: .relaxed),
                        checksPassed: endpoint.checksPassed, checksFailed: endpoint.checksFailed, lastCheck: endpoint.lastCheck)
                }, checkDurations: checkDurations)
        }
    }

    /// Takes a reloaded configuration of this service (main thread). Endpoints that stay
    /// keep their health and counters; removed ones get no new connections while their open
    /// ones finish. New settings (timeouts, checks, mode) apply to new work.
    func update(config new: ServiceConfig) -> (added: Int, removed: Int) {
        // Only this thread replaces the table, so reading it first and swapping it in below
        // cannot miss a change.
        let table = Self.maglevTable(for: new, reusing: lock.withLock { selector.maglev })
        let result = lock.withLock { () -> (added: Int, removed: Int) in
            var kept: [SocketAddress: Endpoint] = [:]
            for endpoint in _endpoints { kept[endpoint.address] = endpoint }
            var added = 0
            _endpoints = new.endpoints.map { endpointConfig in
                if let endpoint = kept.removeValue(forKey: endpointConfig.address) {
                    endpoint.config = endpointConfig
                    return endpoint
                }
                added += 1
                return Endpoint(config: endpointConfig)
            }
            for removed in kept.values { removed.isRemoved = true }
            if new.mode != _config.mode || new.failback != _config.failback || new.balance != _config.balance {
                selector = EndpointSelector(mode: new.mode, failback: new.failback, policy: new.balance)
            }
            selector.maglev = table
            current = Settings(new)
            return (added, kept.count)
        }
        serveQueue(on: 0)
        return result
    }

    /// A reload removed the service: its endpoints take no new connections.
    func retire() {
        lock.withLock { _endpoints.forEach { $0.isRemoved = true } }
    }

    // MARK: Connections

    /// A client connection was accepted and will be served: counted, and given the
    /// settings in force for its whole life.
    func connectionOpened() -> Settings {
        lock.withLock {
            total += 1
            active += 1
            return current
        }
    }

    /// A client connection was refused before it became a session (a limit).
    func connectionRefused() {
        lock.withLock {
            total += 1
            failed += 1
        }
    }

    /// A connection handed over by a takeover: open here from now on, already counted in
    /// the totals that came with it; it holds a slot of `endpoint` (nil: not connected yet).
    func connectionAdopted(holding endpoint: Endpoint?) -> Settings {
        lock.withLock {
            active += 1
            endpoint?.activeConnections += 1
            return current
        }
    }

    /// A connection ended; `releasing` is the endpoint whose slot it still held, given back
    /// in the same step (one lock per close, not two), and the queue may have it.
    func connectionClosed(failed isFailure: Bool, releasing endpoint: Endpoint? = nil, on worker: Int = 0) {
        let anyWaiting = lock.withLock {
            active -= 1
            if isFailure { failed += 1 }
            guard let endpoint else { return false }
            endpoint.activeConnections -= 1
            return !waiting.isEmpty
        }
        if anyWaiting { serveQueue(on: worker) }
    }

    /// The endpoint for `session`'s connection (or its retry that skips `tried`), with a
    /// slot taken in it. `clientKey` is the hash of the client's address, for source-ip.
    ///
    /// When every endpoint it may use is full, a new connection joins the queue (`.queued`)
    /// in the same step, so that no slot can free unseen in between. It also queues while
    /// others wait, so the queue stays first come, first served. A connection coming out of
    /// the queue (`fromQueue`) may choose only at its head, and leaves it on any answer but
    /// `.allFull`.
    func choose(excluding tried: [Endpoint], now: Double, clientKey: UInt64 = 0, for session: Session, fromQueue: Bool = false) -> Choice {
        lock.withLock {
            if fromQueue && waiting.first !== session { return .allFull }
            let (anyUp, anyFree) = buildCandidates(excluding: tried, now: now)
            let choice: Choice
            if !anyUp {
                choice = .noneUp
            } else if !anyFree || (!fromQueue && !waiting.isEmpty) {
                if fromQueue { return .allFull }
                guard let queue = _config.queue, waiting.count < queue.size else { return .allFull }
                waiting.append(session)
                return .queued
            } else if let index = selector.choose(candidates, clientKey: clientKey) {
                let endpoint = _endpoints[index]
                endpoint.activeConnections += 1
                choice = .endpoint(endpoint)
            } else {
                choice = .noneUp
            }
            if fromQueue { waiting.removeFirst() }
            return choice
        }
    }

    /// UDP: the endpoint for a new session (or one whose endpoint failed, skipping
    /// `tried`), with a slot taken in it; nil when none may take it (UDP has no queue).
    func chooseForDatagrams(excluding tried: [Endpoint], now: Double, clientKey: UInt64) -> Endpoint? {
        lock.withLock {
            let (anyUp, anyFree) = buildCandidates(excluding: tried, now: now)
            guard anyUp, anyFree, let index = selector.choose(candidates, clientKey: clientKey) else { return nil }
            let endpoint = _endpoints[index]
            endpoint.activeConnections += 1
            return endpoint
        }
    }

    /// Fills `candidates` for a choice: whether each endpoint is up (by health, runtime
    /// state and SRV tier), tried already, or full. Called with `lock` held.
    private func buildCandidates(excluding tried: [Endpoint], now: Double) -> (anyUp: Bool, anyFree: Bool) {
        var anyUp = false
        var anyFree = false
        candidates.removeAll(keepingCapacity: true)
        upScratch.removeAll(keepingCapacity: true)
        for endpoint in _endpoints { upScratch.append(isEligible(endpoint, now: now)) }
        if current.hasTiers {
            // SRV: only the lowest priority of each name with an endpoint up serves.
            tierFloor.removeAll(keepingCapacity: true)
            for (index, endpoint) in _endpoints.enumerated() where upScratch[index] {
                guard let tier = endpoint.config.tier else { continue }
                tierFloor[tier.group] = min(tierFloor[tier.group] ?? .max, tier.priority)
            }
            for (index, endpoint) in _endpoints.enumerated() where upScratch[index] {
                if let tier = endpoint.config.tier, tier.priority > tierFloor[tier.group]! { upScratch[index] = false }
            }
        }
        for (index, endpoint) in _endpoints.enumerated() {
            let up = upScratch[index]
            let full = endpoint.config.maxConnections.map { endpoint.activeConnections >= $0 } ?? false
            let tried = !tried.isEmpty && tried.contains { $0 === endpoint }
            if up && !tried {
                anyUp = true
                if !full { anyFree = true }
            }
            candidates.append(EndpointSelector.Candidate(isUp: up, isExcluded: tried || full, weight: endpoint.config.weight,
                                                         activeConnections: endpoint.activeConnections))
        }
        return (anyUp, anyFree)
    }

    /// Gives back a slot taken by `choose` (on worker `worker`'s thread), and lets the
    /// queue have it.
    func release(_ endpoint: Endpoint, on worker: Int) {
        let anyWaiting = lock.withLock {
            endpoint.activeConnections -= 1
            return !waiting.isEmpty
        }
        if anyWaiting { serveQueue(on: worker) }
    }

    // MARK: Queue

    func leaveQueue(_ session: Session, timedOut: Bool) {
        lock.withLock {
            if let index = waiting.firstIndex(where: { $0 === session }) { waiting.remove(at: index) }
            if timedOut { timeouts += 1 }
        }
    }

    /// A slot may have freed (a connection ended, an endpoint came up, a reload): let the
    /// connections at the head of the queue try again, in arrival order. Runs on worker
    /// `worker`'s thread; a head that belongs to another worker is handed to that worker's
    /// loop, which goes on from there.
    func serveQueue(on worker: Int) {
        while true {
            guard let head = lock.withLock({ waiting.first }) else { return }
            if head.proxy.index != worker {
                let owner = head.proxy.index
                head.proxy.loop.post { [self] in self.serveQueue(on: owner) }
                return
            }
            // Still full: it keeps its place at the head.
            if !head.retryFromQueue() { return }
        }
    }

    // MARK: Health

    /// Whether active checks bring a down endpoint back; without them (checks off, or a
    /// UDP service) it is tried again after a time down. Called with `lock` held.
    private var activeChecks: Bool { _config.activeChecks }

    /// Called with `lock` held.
    private func isEligible(_ endpoint: Endpoint, now: Double) -> Bool {
        // Drain and maintenance (set from the admin port) take no new connections, under any policy.
        if endpoint.isRemoved || endpoint.config.adminState != .ready { return false }
        if endpoint.isUp { return true }
        // Checks off: a passively failed endpoint is tried again after its time down.
        if !activeChecks, let at = endpoint.passiveRetryAt, now >= at {
            endpoint.passiveRetryAt = nil
            if endpoint.health.probation(fall: _config.healthCheck.fall) != nil {
                Log.notice("service \(name): endpoint \(endpoint.config.name) eligible again after \(DurationText.format(_config.passiveDownTime)) down (checks off; the next connect decides)")
            }
            return true
        }
        return false
    }

    /// A connect made for a client (on worker `worker`'s thread) failed: counted against
    /// the endpoint's health, unless the cause was local. `error` is nil for a timeout.
    /// (The session logs it, with its client's address.)
    func connectFailed(_ endpoint: Endpoint, error: SystemError?, now: Double, on worker: Int) {
        if error?.isLocalResourceShortage != true {
            let reason = error?.reason ?? "connect timed out"
            lock.withLock {
                endpoint.failedConnects += 1
                recordFailureLocked(endpoint, reason: reason, now: now)
            }
        }
        release(endpoint, on: worker)
    }

    /// A connect made for a client succeeded. It counts as a passed check only where the
    /// check is a connect too: a server that accepts connections but refuses them in its
    /// protocol (a 503, a database shutting down) must still go down on its failed checks.
    func connectSucceeded(_ endpoint: Endpoint) {
        lock.withLock {
            endpoint.totalConnections += 1
            let check = _config.healthCheck
            if !check.enabled || check.kind == .tcp { _ = endpoint.health.recordPass(rise: check.rise) }
        }
    }

    /// An active check's result: counted, and fed to the endpoint's rise/fall counting (a
    /// change of state is logged once). Runs on the main thread, worker 0.
    func recordCheck(_ endpoint: Endpoint, result: HealthCheckResult, now: Double) {
        let (passed, reason) = (result.ok, result.reason)
        let wentUp = lock.withLock { () -> Bool in
            endpoint.lastCheck = result
            checkDurations.record(result.duration)
            if passed {
                endpoint.checksPassed += 1
                let check = _config.healthCheck
                guard endpoint.health.recordPass(rise: check.rise) == .wentUp else { return false }
                Log.notice("service \(name): endpoint \(endpoint.config.name) up: \(reason) (\(check.rise) consecutive passes)")
                return true
            }
            endpoint.checksFailed += 1
            recordFailureLocked(endpoint, reason: reason, now: now)
            return false
        }
        if wentUp { serveQueue(on: 0) }
    }

    /// Called with `lock` held.
    private func recordFailureLocked(_ endpoint: Endpoint, reason: String, now: Double) {
        let check = _config.healthCheck
        guard endpoint.health.recordFailure(fall: check.fall) == .wentDown else { return }
        Log.warning("service \(name): endpoint \(endpoint.config.name) down: \(reason) (\(endpoint.health.consecutiveFailures) consecutive failures)")
        if !activeChecks { endpoint.passiveRetryAt = now + _config.passiveDownTime }
        if !_endpoints.contains(where: { $0.isUp && !$0.isRemoved }) {
            Log.error("service \(name): no endpoint is up; new connections are closed")
        }
    }

    // MARK: Takeover

    /// Health and counters, for the process taking over.
    func takeoverFigures() -> TakeoverMessage.ServiceFigures {
        lock.withLock {
            let counters = [total, failed, timeouts].map { UInt64($0) }
                + [bytesIn.load(ordering: .relaxed), bytesOut.load(ordering: .relaxed), datagramsIn.load(ordering: .relaxed),
                   datagramsOut.load(ordering: .relaxed), droppedDatagrams.load(ordering: .relaxed)]
            return TakeoverMessage.ServiceFigures(name: name, counters: counters, endpoints: _endpoints.map { endpoint in
                TakeoverMessage.EndpointFigures(
                    address: endpoint.address.description, isUp: endpoint.health.isUp,
                    consecutiveFailures: endpoint.health.consecutiveFailures, consecutivePasses: endpoint.health.consecutivePasses,
                    counters: [endpoint.totalConnections, endpoint.failedConnects, endpoint.checksPassed, endpoint.checksFailed].map { UInt64($0) }
                        + [endpoint.bytesIn.load(ordering: .relaxed), endpoint.bytesOut.load(ordering: .relaxed)],
                    lastCheck: endpoint.lastCheck)
            })
        }
    }

    /// Takes the health and counters the previous process had (endpoints matched by address;
    /// ones it did not have start as usual).
    func restore(_ figures: TakeoverMessage.ServiceFigures, now: Double) {
        func at(_ values: [UInt64], _ index: Int) -> UInt64 { index < values.count ? values[index] : 0 }
        lock.withLock {
            total += Int(at(figures.counters, 0))
            failed += Int(at(figures.counters, 1))
            timeouts += Int(at(figures.counters, 2))
            bytesIn.wrappingAdd(at(figures.counters, 3), ordering: .relaxed)
            bytesOut.wrappingAdd(at(figures.counters, 4), ordering: .relaxed)
            datagramsIn.wrappingAdd(at(figures.counters, 5), ordering: .relaxed)
            datagramsOut.wrappingAdd(at(figures.counters, 6), ordering: .relaxed)
            droppedDatagrams.wrappingAdd(at(figures.counters, 7), ordering: .relaxed)
            var byAddress: [String: TakeoverMessage.EndpointFigures] = [:]
            for entry in figures.endpoints { byAddress[entry.address] = entry }
            for endpoint in _endpoints {
                guard let entry = byAddress[endpoint.address.description] else { continue }
                endpoint.health = HealthState(isUp: entry.isUp, consecutiveFailures: entry.consecutiveFailures,
                                              consecutivePasses: entry.consecutivePasses)
                endpoint.totalConnections += Int(at(entry.counters, 0))
                endpoint.failedConnects += Int(at(entry.counters, 1))
                endpoint.checksPassed += Int(at(entry.counters, 2))
                endpoint.checksFailed += Int(at(entry.counters, 3))
                endpoint.bytesIn.wrappingAdd(at(entry.counters, 4), ordering: .relaxed)
                endpoint.bytesOut.wrappingAdd(at(entry.counters, 5), ordering: .relaxed)
                endpoint.lastCheck = entry.lastCheck ?? endpoint.lastCheck
                // Checks off: a down endpoint gets its time down again from here.
                if !entry.isUp && !_config.activeChecks { endpoint.passiveRetryAt = now + _config.passiveDownTime }
            }
        }
    }

    /// The endpoint at `address` (as `/stats` writes it).
    func endpoint(at address: String) -> Endpoint? {
        lock.withLock { _endpoints.first { $0.address.description == address } }
    }
}
