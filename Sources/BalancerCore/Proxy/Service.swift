/// A running service: its configuration, its endpoints with their health, the choice of
/// endpoint for new connections, and its counters.
public final class Service {
    public private(set) var config: ServiceConfig
    public private(set) var endpoints: [Endpoint]
    private var selector: EndpointSelector
    /// Reused by every choice, so that choosing allocates nothing per connection.
    private var candidates: [EndpointSelector.Candidate] = []

    public internal(set) var activeConnections = 0
    public internal(set) var totalConnections = 0
    /// Client connections that could not be served at all.
    public internal(set) var failedConnections = 0
    public internal(set) var bytesIn: UInt64 = 0
    public internal(set) var bytesOut: UInt64 = 0
    /// Connections that waited for a free slot until `queue.timeout`.
    public internal(set) var queueTimeouts = 0
    /// Connections waiting for a free endpoint slot, in arrival order.
    private var waiting: [Session] = []
    public var queued: Int { waiting.count }

    public var name: String { config.name }

    /// The outcome of choosing an endpoint for a connection.
    enum Choice {
        case endpoint(Endpoint)
        /// Endpoints are up, but each one this connection may use is at its maxConnections.
        case allFull
        case noneUp
    }

    public init(config: ServiceConfig) {
        self.config = config
        endpoints = config.endpoints.map(Endpoint.init)
        selector = Self.makeSelector(config)
    }

    private static func makeSelector(_ config: ServiceConfig) -> EndpointSelector {
        var selector = EndpointSelector(mode: config.mode, failback: config.failback, policy: config.balance)
        selector.names = config.endpoints.map(\.address.description)
        return selector
    }

    /// Takes a reloaded configuration of this service. Endpoints that stay keep their health
    /// and counters; removed ones get no new connections while their open ones finish.
    /// New settings (timeouts, checks, mode) apply to new work.
    func update(config new: ServiceConfig) {
        var kept: [SocketAddress: Endpoint] = [:]
        for endpoint in endpoints { kept[endpoint.address] = endpoint }
        endpoints = new.endpoints.map { endpointConfig in
            if let endpoint = kept.removeValue(forKey: endpointConfig.address) {
                endpoint.config = endpointConfig
                return endpoint
            }
            return Endpoint(config: endpointConfig)
        }
        for removed in kept.values { removed.isRemoved = true }
        if new.mode != config.mode || new.failback != config.failback || new.balance != config.balance {
            selector = Self.makeSelector(new)
        } else {
            selector.names = new.endpoints.map(\.address.description)
        }
        config = new
        serveQueue()
    }

    /// The endpoint for a new connection (or a retry that skips `tried`). `clientKey` is the
    /// hash of the client's address, for source-ip.
    func choose(excluding tried: [Endpoint], now: Double, clientKey: UInt64 = 0) -> Choice {
        var anyUp = false
        var anyFree = false
        candidates.removeAll(keepingCapacity: true)
        for endpoint in endpoints {
            let up = isEligible(endpoint, now: now)
            let full = endpoint.config.maxConnections.map { endpoint.activeConnections >= $0 } ?? false
            let tried = !tried.isEmpty && tried.contains { $0 === endpoint }
            if up && !tried {
                anyUp = true
                if !full { anyFree = true }
            }
            candidates.append(EndpointSelector.Candidate(isUp: up, isExcluded: tried || full, weight: endpoint.config.weight,
                                                         activeConnections: endpoint.activeConnections))
        }
        if !anyUp { return .noneUp }
        if !anyFree { return .allFull }
        guard let index = selector.choose(candidates, clientKey: clientKey) else { return .noneUp }
        return .endpoint(endpoints[index])
    }

    /// Whether a policy needs the client's address to choose.
    var needsClientAddress: Bool { config.mode == .activeActive && config.balance == .sourceIP }

    // MARK: Queue

    /// Puts a connection that found every endpoint full in the queue; false when the
    /// service has no queue or it is full.
    func enqueue(_ session: Session, atFront: Bool = false) -> Bool {
        guard let queue = config.queue, waiting.count < queue.size || atFront else { return false }
        if atFront { waiting.insert(session, at: 0) } else { waiting.append(session) }
        return true
    }

    func leaveQueue(_ session: Session) {
        if let index = waiting.firstIndex(where: { $0 === session }) { waiting.remove(at: index) }
    }

    /// A slot may have freed (a connection ended, an endpoint came up, a reload): let the
    /// connections at the head of the queue try again, in arrival order.
    func serveQueue() {
        while !waiting.isEmpty {
            let session = waiting.removeFirst()
            if !session.retryFromQueue() {
                // Still full: it keeps its place at the head.
                waiting.insert(session, at: 0)
                return
            }
        }
    }

    private func isEligible(_ endpoint: Endpoint, now: Double) -> Bool {
        if endpoint.isRemoved { return false }
        if endpoint.isUp { return true }
        // Checks off: a passively failed endpoint is tried again after its time down.
        if !config.healthCheck.enabled, let at = endpoint.passiveRetryAt, now >= at {
            endpoint.passiveRetryAt = nil
            if endpoint.health.probation(fall: config.healthCheck.fall) != nil {
                Log.notice("service \(name): endpoint \(endpoint.config.name) eligible again after \(DurationText.format(config.passiveDownTime)) down (checks off; the next connect decides)")
            }
            return true
        }
        return false
    }

    /// A connect made for a client failed. `error` is nil for a timeout.
    func connectFailed(_ endpoint: Endpoint, error: SystemError?, now: Double) {
        if let error, error.isLocalResourceShortage {
            Log.warning("service \(name): connect to \(endpoint.config.name) failed for a local reason: \(error.reason)")
            return
        }
        endpoint.failedConnects += 1
        let reason = error?.reason ?? "connect timed out"
        Log.debug("service \(name): connect to \(endpoint.config.name) failed: \(reason)")
        recordCheck(endpoint, passed: false, reason: reason, now: now)
    }

    func connectSucceeded(_ endpoint: Endpoint) {
        endpoint.totalConnections += 1
        _ = endpoint.health.recordPass(rise: config.healthCheck.rise)
    }

    /// Feeds one check result (active, or a client connect) to the endpoint's rise/fall
    /// counting, and logs a change of state once.
    func recordCheck(_ endpoint: Endpoint, passed: Bool, reason: String, now: Double) {
        let check = config.healthCheck
        if passed {
            if endpoint.health.recordPass(rise: check.rise) == .wentUp {
                Log.notice("service \(name): endpoint \(endpoint.config.name) up: \(reason) (\(check.rise) consecutive passes)")
                serveQueue()
            }
        } else {
            if endpoint.health.recordFailure(fall: check.fall) == .wentDown {
                Log.warning("service \(name): endpoint \(endpoint.config.name) down: \(reason) (\(endpoint.health.consecutiveFailures) consecutive failures)")
                if !check.enabled { endpoint.passiveRetryAt = now + config.passiveDownTime }
                if !endpoints.contains(where: { $0.isUp && !$0.isRemoved }) {
                    Log.error("service \(name): no endpoint is up; new connections are closed")
                }
            }
        }
    }
}
