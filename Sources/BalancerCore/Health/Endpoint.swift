/// One endpoint of a running service: its health and its counters.
///
/// Counters are plain integers touched by the loop that owns the service; the admin port
/// reads them on the same loop.
public final class Endpoint {
    /// Replaced by a reload that keeps the endpoint (its written name may change).
    public internal(set) var config: EndpointConfig
    public var address: SocketAddress { config.address }
    public internal(set) var health = HealthState()
    /// With active checks off, when a passively failed endpoint becomes eligible again.
    var passiveRetryAt: Double?

    public internal(set) var activeConnections = 0
    public internal(set) var totalConnections = 0
    /// Failed connects made for client connections (health checks are counted apart).
    public internal(set) var failedConnects = 0
    public internal(set) var bytesIn: UInt64 = 0
    public internal(set) var bytesOut: UInt64 = 0
    public internal(set) var checksPassed = 0
    public internal(set) var checksFailed = 0
    /// Set while the endpoint is being removed by a reload: no new connections.
    public internal(set) var isRemoved = false

    public init(config: EndpointConfig) {
        self.config = config
    }

    public var isUp: Bool { health.isUp }
}
