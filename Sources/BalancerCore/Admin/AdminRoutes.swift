/// What each admin request gets: `/healthz`, `/stats`, `/metrics` answer GET; another
/// method on them is 405, another path 404. The status page and the runtime commands are
/// in `RuntimeRoutes`; with a token set, `AdminAccess` asks for it first.
public struct AdminRoutes {
    public var services: () -> [Service]
    public var workers: () -> [Workers.Figures]
    public var info: RuntimeInfo
    /// The addresses shared by server name, with the connections they closed.
    public var listeners: () -> [StatsRenderer.ListenerFigures]
    /// The names followed in DNS.
    public var dns: () -> [DNSDiscovery.Status]
    /// etcd, when the configuration follows it.
    public var etcd: () -> EtcdDiscovery.Status?
    /// Carries out a runtime command (see `RuntimeRoutes`).
    public var control: (RuntimeCommand) -> RuntimeCommand.Outcome
    /// The token and origin in force (a reload may change them).
    public var access: () -> AdminAccess
    /// The connection log's counters.
    public var accessLog: () -> AccessLog.Figures

    public init(info: RuntimeInfo, services: @escaping () -> [Service], workers: @escaping () -> [Workers.Figures] = { [] },
                dns: @escaping () -> [DNSDiscovery.Status] = { [] }, etcd: @escaping () -> EtcdDiscovery.Status? = { nil },
                control: @escaping (RuntimeCommand) -> RuntimeCommand.Outcome = { _ in .unknownService },
                access: @escaping () -> AdminAccess = { AdminAccess() },
                accessLog: @escaping () -> AccessLog.Figures = { AccessLog.Figures() },
                listeners: @escaping () -> [StatsRenderer.ListenerFigures] = { [] }) {
        self.listeners = listeners
        self.info = info
        self.services = services
        self.workers = workers
        self.dns = dns
        self.etcd = etcd
        self.control = control
        self.access = access
        self.accessLog = accessLog
    }

    static let paths: Set<String> = ["/healthz", "/stats", "/metrics"]

    public func respond(to request: AdminRequest) -> AdminResponse {
        let access = access()
        if let refusal = access.unauthorized(request) { return refusal }
        if let answer = RuntimeRoutes.respond(to: request, access: access, control: control) { return answer }
        guard Self.paths.contains(request.path) else {
            return AdminResponse(status: 404, body: "not found; try /, /healthz, /stats or /metrics\n")
        }
        guard request.method == "GET" else {
            return AdminResponse(status: 405, body: "method not allowed\n", headers: ["Allow: GET"])
        }
        switch request.path {
        case "/healthz":
            return AdminResponse(status: 200, body: "ok")
        case "/stats":
            return AdminResponse(status: 200, contentType: "application/json", body: StatsRenderer.json(services: services(), info: info, workers: workers(), dns: dns(), etcd: etcd(), accessLog: accessLog(), listeners: listeners()))
        default:
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: StatsRenderer.prometheus(services: services(), info: info, workers: workers(), dns: dns(), etcd: etcd(), accessLog: accessLog(), listeners: listeners()))
        }
    }
}
