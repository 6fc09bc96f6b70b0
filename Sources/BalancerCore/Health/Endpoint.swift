import Synchronization

/// One endpoint of a running service: its health and its counters.
///
/// Every worker loop shares it. Its mutable fields belong to its `Service` and change only
/// under that service's lock; the byte counters are atomics, because every relayed chunk
/// adds to them.
public final class Endpoint: @unchecked Sendable {
    /// The endpoint's identity: a reload keeps an endpoint whose address stays.
    public let address: SocketAddress
    /// Replaced by a reload that keeps the endpoint (its written name may change).
    var config: EndpointConfig
    var health = HealthState()
    /// With active checks off, when a passively failed endpoint becomes eligible again.
    var passiveRetryAt: Double?

    var activeConnections = 0
    var totalConnections = 0
    /// Failed connects made for client connections (health checks are counted apart).
    var failedConnects = 0
    var checksPassed = 0
    var checksFailed = 0
    /// The last active check's outcome (`/stats` `lastCheck`); nil before the first.
    var lastCheck: HealthCheckResult?
    /// Set while the endpoint is being removed by a reload: no new connections.
    var isRemoved = false

    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)

    init(config: EndpointConfig) {
        self.config = config
        address = config.address
    }

    var isUp: Bool { health.isUp }
}
