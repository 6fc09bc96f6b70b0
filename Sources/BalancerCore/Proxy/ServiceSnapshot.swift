/// A consistent copy of a service's figures, taken under its lock: what the admin port and
/// the status line read, while worker loops go on changing the live ones.
public struct ServiceSnapshot: Sendable {
    public struct Endpoint: Sendable {
        public var config: EndpointConfig
        public var health: HealthState
        public var isUp: Bool { health.isUp }
        public var activeConnections: Int
        public var totalConnections: Int
        public var failedConnects: Int
        public var bytesIn: UInt64
        public var bytesOut: UInt64
        public var checksPassed: Int
        public var checksFailed: Int
        /// The last active check's outcome; nil before the first.
        public var lastCheck: HealthCheckResult?
    }

    public var name: String
    public var config: ServiceConfig
    public var activeConnections: Int
    public var totalConnections: Int
    public var failedConnections: Int
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var queued: Int
    public var queueTimeouts: Int
    /// UDP services.
    public var datagramsIn: UInt64
    public var datagramsOut: UInt64
    public var droppedDatagrams: UInt64
    public var endpoints: [Endpoint]
    /// How long the service's active checks took.
    public var checkDurations: CheckDurationHistogram
}
