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
    /// `resolvers:`; nil means the nameservers of /etc/resolv.conf.
    public var resolvers: ResolverConfig?
    /// `discovery:`; nil when the file is the only source of services.
    public var discovery: DiscoveryConfig?
    /// `accessLog:`; nil: no connection log.
    public var accessLog: AccessLogConfig? = nil
    /// What every service inherits: the built-in defaults with the file's `defaults` over
    /// them. Services from etcd are read over it too.
    public var serviceDefaults = ServiceConfig(name: "", listen: AdminConfig.defaultListen)

    public var endpointCount: Int { services.reduce(0) { $0 + $1.endpoints.count } }

    /// Every name the services' endpoint lists follow, once each.
    public var dnsNames: [DNSName] {
        var seen: Set<DNSName.Query> = []
        var names: [DNSName] = []
        for service in services {
            for case .name(let name) in service.sources where seen.insert(name.query).inserted { names.append(name) }
        }
        return names
    }

    /// The longest drain any service asks for: how long shutdown may take.
    public var longestDrain: Double { services.map(\.drainTimeout).max() ?? 0 }
}

public struct AdminConfig: Sendable, Equatable {
    public var listen: SocketAddress
    public var allowRemote: Bool
    /// `admin.token`, or the content of `admin.tokenFile`: when set, every request but
    /// `GET /healthz` (and the status page itself) needs `Authorization: Bearer <token>`.
    public var token: String? = nil
    /// `admin.stateFile`: where runtime overrides (admin state, weight) are kept across restarts.
    public var stateFile: String? = nil

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
    /// `type` and its keys: what the check says and expects (see `HealthCheckKind`).
    public var kind: HealthCheckKind = .tcp
    /// `port`: check this port of the endpoint's host rather than the endpoint's own.
    public var port: UInt16?

    public init() {}
}

/// One concrete endpoint: an address balancerd connects to.
public struct EndpointConfig: Sendable, Equatable {
    /// How logs name it: as written in the file for a literal, `ip:port` for an address a
    /// name resolved to.
    public var name: String
    public var address: SocketAddress
    /// 1-256, for every policy.
    public var weight: Int = 1
    /// Open connections allowed to this endpoint; nil is unlimited.
    public var maxConnections: Int?
    /// Where it comes from, as `/stats` shows it: `file`, `dns:NAME:PORT`, `srv:NAME`.
    public var source: String = "file"
    /// SRV: the endpoints of one SRV name form priority tiers; only the lowest `priority`
    /// with an endpoint up gets connections. nil for every other endpoint.
    public var tier: Tier?
    /// Set from the admin port (see `RuntimeOverrides`); only `ready` gets new connections.
    public var adminState: AdminState = .ready

    public struct Tier: Sendable, Equatable {
        /// The SRV name whose records these are.
        public var group: String
        public var priority: Int
    }

    public init(name: String, address: SocketAddress, weight: Int = 1, maxConnections: Int? = nil) {
        self.name = name
        self.address = address
        self.weight = weight
        self.maxConnections = maxConnections
    }
}

/// One entry of a service's `endpoints:` list as written: a fixed address, or a name that
/// stands for as many endpoints as it resolves to.
public enum EndpointSource: Sendable, Equatable {
    case fixed(EndpointConfig)
    case name(DNSName)
}

/// `discovery:`: stores that add services and endpoints to the file's.
public struct DiscoveryConfig: Sendable, Equatable {
    public var etcd: EtcdConfig?
}

/// `discovery.etcd`: an etcd v3 cluster, read through its JSON gateway.
public struct EtcdConfig: Sendable, Equatable {
    /// Member URLs, tried in turn.
    public var endpoints: [String] = []
    public var prefix = "/balancerd"
    /// Connect timeout to a member; also how long start-up waits for the first read.
    public var dialTimeout: Double = 2
    public var tls: TLS?

    public struct TLS: Sendable, Equatable {
        public var ca: String?
        public var cert: String?
        public var key: String?
    }

    /// `http://host:port` or `https://host:port`, with an optional path-free trailing `/`.
    public static func isMemberURL(_ text: String) -> Bool {
        for scheme in ["http://", "https://"] where text.hasPrefix(scheme) {
            var rest = text.dropFirst(scheme.count)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            guard let parts = SocketAddress.split(String(rest)), !parts.host.isEmpty, let port = Int(parts.port) else { return false }
            return (1...65535).contains(port) && !parts.host.contains("/")
        }
        return false
    }
}

/// `resolvers:`: the nameservers balancerd asks, instead of those of /etc/resolv.conf.
public struct ResolverConfig: Sendable, Equatable {
    public var nameservers: [SocketAddress] = []
    /// One query attempt.
    public var timeout: Double = 1
    /// Per nameserver, per resolution.
    public var attempts: Int = 2
}

/// A service's `dns:` settings.
public struct DNSSettings: Sendable, Hashable {
    /// Each name is resolved again this often.
    public var refresh: Double = 5
    /// How long an authoritative "no such name / no records" answer must persist before
    /// the name's endpoints go.
    public var hold: Double = 30
}

/// Where connections wait while every eligible endpoint is at its `maxConnections`.
public struct QueueConfig: Sendable, Equatable {
    public var size: Int = 1000
    public var timeout: Double = 5
}

/// `protocol:` of a service.
public enum TransportProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp
    case udp
}

public struct ServiceConfig: Sendable, Equatable {
    /// Whether active health checks run: on, and for UDP only with a TCP `healthCheck.port`
    /// to check (UDP endpoints are otherwise checked passively, by ICMP port unreachable).
    public var activeChecks: Bool { healthCheck.enabled && (transport == .tcp || healthCheck.port != nil) }

    public var name: String
    public var listen: SocketAddress
    /// `protocol`: a TCP and a UDP service may share a listen address.
    public var transport: TransportProtocol = .tcp
    /// UDP: a client address and port silent this long, both ways, is forgotten.
    public var sessionTimeout: Double = 30
    /// TLS server names (`host`, `*.domain`, `*`) that choose this service among those
    /// sharing its listen address; empty for a plain service.
    public var serverNames: [String] = []
    /// With `serverNames`: how long a client may take to send its whole ClientHello.
    public var helloTimeout: Double = 5

    /// What must be unique among services: the address and the protocol.
    public struct ListenKey: Hashable, Sendable {
        public var transport: TransportProtocol
        public var address: SocketAddress
    }

    public var listenKey: ListenKey { ListenKey(transport: transport, address: listen) }
    /// Where it is defined, as `/stats` shows it: `file` or `etcd`.
    public var source = "file"
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
    public var dns = DNSSettings()
    /// The default check interval: with `healthCheck: off` it is how long passive failures
    /// keep an endpoint down.
    public var passiveDownTime: Double = 2
    /// The `endpoints:` list as written.
    public var sources: [EndpointSource] = []
    /// The endpoints in force: the fixed ones and what the names resolved to, in list
    /// order (see `ServiceMap`). As loaded from the file, the fixed ones alone.
    public var endpoints: [EndpointConfig] = []

    public init(name: String, listen: SocketAddress) {
        self.name = name
        self.listen = listen
    }
}
