/// What each admin request gets: `/healthz`, `/stats`, `/metrics` answer GET; another
/// method on them is 405, another path 404.
public struct AdminRoutes {
    public var services: () -> [Service]
    public var workers: () -> [Workers.Figures]
    public var info: RuntimeInfo
    /// The names followed in DNS.
    public var dns: () -> [DNSDiscovery.Status]
    /// etcd, when the configuration follows it.
    public var etcd: () -> EtcdDiscovery.Status?

    public init(info: RuntimeInfo, services: @escaping () -> [Service], workers: @escaping () -> [Workers.Figures] = { [] },
                dns: @escaping () -> [DNSDiscovery.Status] = { [] }, etcd: @escaping () -> EtcdDiscovery.Status? = { nil }) {
        self.info = info
        self.services = services
        self.workers = workers
        self.dns = dns
        self.etcd = etcd
    }

    static let paths: Set<String> = ["/healthz", "/stats", "/metrics"]

    public func respond(to request: AdminRequest) -> AdminResponse {
        guard Self.paths.contains(request.path) else {
            return AdminResponse(status: 404, body: "not found; try /healthz, /stats or /metrics\n")
        }
        guard request.method == "GET" else {
            return AdminResponse(status: 405, body: "method not allowed\n", headers: ["Allow: GET"])
        }
        switch request.path {
        case "/healthz":
            return AdminResponse(status: 200, body: "ok")
        case "/stats":
            return AdminResponse(status: 200, contentType: "application/json", body: StatsRenderer.json(services: services(), info: info, workers: workers(), dns: dns(), etcd: etcd()))
        default:
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: StatsRenderer.prometheus(services: services(), info: info, workers: workers(), dns: dns(), etcd: etcd()))
        }
    }
}
