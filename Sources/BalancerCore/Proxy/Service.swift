/// A running service: its configuration, its endpoints with their health, the choice of
/// endpoint for new connections, and its counters.
public final class Service {
    public private(set) var config: ServiceConfig
    public private(set) var endpoints: [Endpoint]
    private var selector: EndpointSelector

    public internal(set) var activeConnections = 0
    public internal(set) var totalConnections = 0
    /// Client connections that could not be served at all.
    public internal(set) var failedConnections = 0
    public internal(set) var bytesIn: UInt64 = 0
    public internal(set) var bytesOut: UInt64 = 0

    public var name: String { config.name }

    public init(config: ServiceConfig) {
        self.config = config
        endpoints = config.endpoints.map(Endpoint.init)
        selector = EndpointSelector(mode: config.mode, failback: config.failback)
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
        if new.mode != config.mode || new.failback != config.failback {
            selector = EndpointSelector(mode: new.mode, failback: new.failback)
        }
        config = new
    }

    /// The endpoint for a new connection (or a retry that skips `tried`), nil when none is up.
    func choose(excluding tried: [Endpoint], now: Double) -> Endpoint? {
        let endpoints = self.endpoints
        let index = selector.choose(
            count: endpoints.count,
            isUp: { self.isEligible(endpoints[$0], now: now) },
            isExcluded: { i in tried.contains { $0 === endpoints[i] } })
        return index.map { endpoints[$0] }
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
        endpoint.activeConnections += 1
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
