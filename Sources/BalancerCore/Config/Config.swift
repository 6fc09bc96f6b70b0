/// A validated configuration: what the daemon runs. Built only by `ConfigLoader`.
public struct Config: Sendable {
    /// The file it was read from.
    public var path: String
    public var admin: AdminConfig
    public var logLevel: LogLevel
    /// Event loops to run; nil means one per core.
    public var workers: Int?
    /// Open client connections allowed in all; past it new ones are refused.
    public var maxConnections: Int
    public var services: [ServiceConfig]

    public var endpointCount: Int { services.reduce(0) { $0 + $1.endpoints.count } }

    /// The longest drain any service asks for: how long shutdown may take.
    public var longestDrain: Double { services.map(\.drainTimeout).max() ?? 0 }
}

public struct AdminConfig: Sendable, Equatable {
    public var listen: SocketAddress
    public var allowRemote: Bool

    public static let defaultListen = SocketAddress(family: .ipv4, host: "127.0.0.1", port: 9901)
}

public enum FailoverMode: String, Sendable, Equatable, CaseIterable {
    case activeActive = "active-active"
    case activePassive = "active-passive"
}

/// Active health-check settings; `enabled == false` is `healthCheck: off`.
public struct HealthCheckConfig: Sendable, Equatable {
    public var enabled: Bool = true
    public var interval: Double = 2
    public var timeout: Double = 1
    public var rise: Int = 2
    public var fall: Int = 3

    public init() {}
}

public struct EndpointConfig: Sendable, Equatable {
    /// As written in the file (a DNS name stays a name here).
    public var name: String
    /// Resolved when the configuration was loaded.
    public var address: SocketAddress
    /// 1-256, for round-robin and least-connections.
    public var weight: Int = 1
    /// Open connections allowed to this endpoint; nil is unlimited.
    public var maxConnections: Int?

    public init(name: String, address: SocketAddress, weight: Int = 1, maxConnections: Int? = nil) {
        self.name = name
        self.address = address
        self.weight = weight
        self.maxConnections = maxConnections
    }
}

/// Where connections wait while every eligible endpoint is at its `maxConnections`.
public struct QueueConfig: Sendable, Equatable {
    public var size: Int = 1000
    public var timeout: Double = 5
}

public struct ServiceConfig: Sendable {
    public var name: String
    public var listen: SocketAddress
    public var mode: FailoverMode = .activeActive
    public var failback: Bool = true
    public var connectTimeout: Double = 2
    public var idleTimeout: Double = 3600
    public var drainTimeout: Double = 30
    public var retries: Int = 2
    public var healthCheck = HealthCheckConfig()
    public var balance: BalancePolicy = .roundRobin
    public var proxyProtocol: ProxyProtocolVersion = .off
    /// nil: a connection that finds every eligible endpoint full is closed at once.
    public var queue: QueueConfig?
    /// The default check interval: with `healthCheck: off` it is how long passive failures
    /// keep an endpoint down.
    public var passiveDownTime: Double = 2
    public var endpoints: [EndpointConfig] = []

    public init(name: String, listen: SocketAddress) {
        self.name = name
        self.listen = listen
    }
}
