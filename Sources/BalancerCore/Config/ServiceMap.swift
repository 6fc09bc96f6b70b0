/// The desired service map: the file's services, with the endpoints each name stands for
/// filled in from that name's last good answer, and what the admin port set at run time
/// on top.
///
/// This is the one producer of the configuration `Workers.apply` takes, for a reload, every
/// DNS change and every runtime change alike, so all go through the same differ (services
/// by name, endpoints by address: added, kept with their health, or drained).
public enum ServiceMap {
    /// `file` with every service's `endpoints` rebuilt from its `sources`: fixed endpoints
    /// as written, each name's targets from `answers` (none while it has no answer), in
    /// list order. An address that two entries of one service give is kept once, the first.
    /// `overrides` (admin state and weight set at run time) apply over both.
    public static func materialize(_ file: Config, answers: [DNSName.Query: DNSRecordSet],
                                   overrides: RuntimeOverrides = RuntimeOverrides()) -> Config {
        var config = file
        config.services = file.services.map { service in
            var service = service
            service.endpoints = endpoints(of: service, answers: answers).map { overrides.applied(to: $0, service: service.name) }
            return service
        }
        return config
    }

    static func endpoints(of service: ServiceConfig, answers: [DNSName.Query: DNSRecordSet]) -> [EndpointConfig] {
        var seen: Set<SocketAddress> = []
        var list: [EndpointConfig] = []
        for source in service.sources {
            switch source {
            case .fixed(let endpoint):
                if seen.insert(endpoint.address).inserted { list.append(endpoint) }
            case .name(let name):
                for target in answers[name.query]?.targets ?? [] {
                    let port = name.kind == .service ? target.address.port : name.port
                    let address = SocketAddress(family: target.address.family, host: target.address.host, port: port)
                    guard seen.insert(address).inserted else { continue }
                    var endpoint = EndpointConfig(name: address.description, address: address)
                    // SRV: the record's weight (0 means 1, at most 256) unless the file sets one.
                    endpoint.weight = name.weight ?? min(256, max(1, target.weight ?? 1))
                    endpoint.maxConnections = name.maxConnections
                    endpoint.source = name.label
                    if name.kind == .service {
                        endpoint.tier = EndpointConfig.Tier(group: name.label, priority: target.priority ?? 0)
                    }
                    list.append(endpoint)
                }
            }
        }
        return list
    }
}
