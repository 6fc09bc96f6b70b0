/// Renders the admin port's figures: `/stats` as JSON and `/metrics` in Prometheus text
/// exposition format 0.0.4. Both read a snapshot of each service taken at the request, so
/// each service's figures are consistent while the workers go on; nothing is kept between
/// requests.
public enum StatsRenderer {
    /// An address shared by server name: connections closed before reaching a service.
    public struct ListenerFigures: Sendable {
        public var listen: String
        public var unmatched: Int
        public var notTLS: Int
        public var timeouts: Int

        public init(listen: String, unmatched: Int, notTLS: Int, timeouts: Int) {
            self.listen = listen
            self.unmatched = unmatched
            self.notTLS = notTLS
            self.timeouts = timeouts
        }
    }

    // MARK: JSON

    public static func json(services live: [Service], info: RuntimeInfo, workers: [Workers.Figures] = [], dns: [DNSDiscovery.Status] = [],
                            etcd: EtcdDiscovery.Status? = nil, accessLog: AccessLog.Figures = AccessLog.Figures(),
                            listeners: [ListenerFigures] = []) -> String {
        let services = live.map { $0.snapshot() }
        var out = "{"
        out += "\"version\":\(quote(BalancerVersion.string)),"
        out += "\"uptimeSeconds\":\(seconds(info.uptime)),"
        out += "\"openConnections\":\(services.reduce(0) { $0 + $1.activeConnections }),"
        out += "\"workers\":["
        out += workers.map { "{\"openConnections\":\($0.openConnections),\"acceptedConnections\":\($0.acceptedConnections)}" }.joined(separator: ",")
        out += "],"
        out += "\"config\":{\"generation\":\(info.generation),\"path\":\(quote(info.configPath)),\"lastReload\":"
        if let last = info.lastReload {
            out += "{\"ok\":\(last.ok),\"error\":\(last.error.map(quote) ?? "null"),\"time\":\(seconds(last.time))}"
        } else {
            out += "null"
        }
        out += "},\"accessLog\":{\"written\":\(accessLog.written),\"dropped\":\(accessLog.dropped)}"
        out += ",\"dns\":["
        out += dns.map { name in
            "{\"name\":\(quote(name.name)),\"type\":\(quote(name.type.rawValue)),\"addresses\":\(name.addresses),"
                + "\"lastResolved\":\(name.lastResolved.map(seconds) ?? "null"),\"lastError\":\(name.lastError.map(quote) ?? "null")}"
        }.joined(separator: ",")
        out += "],\"listeners\":["
        out += listeners.map {
            "{\"listen\":\(quote($0.listen)),\"unmatched\":\($0.unmatched),\"notTLS\":\($0.notTLS),\"timeouts\":\($0.timeouts)}"
        }.joined(separator: ",")
        out += "],\"discovery\":{"
        if let etcd {
            out += "\"etcd\":{\"connected\":\(etcd.connected),\"revision\":\(etcd.revision),\"member\":\(etcd.member.map(quote) ?? "null"),"
            out += "\"lastError\":\(etcd.lastError.map(quote) ?? "null"),\"rejected\":["
            out += etcd.rejected.map { "{\"key\":\(quote($0.key)),\"revision\":\($0.revision),\"error\":\(quote($0.error))}" }.joined(separator: ",")
            out += "]}"
        }
        out += "},\"services\":["
        for (index, service) in services.enumerated() {
            if index > 0 { out += "," }
            let config = service.config
            out += "{\"name\":\(quote(service.name)),\"listen\":\(quote(config.listen.description)),\"source\":\(quote(config.source)),"
            out += "\"mode\":\(quote(config.mode.rawValue)),"
            out += "\"activeConnections\":\(service.activeConnections),\"totalConnections\":\(service.totalConnections),"
            out += "\"failedConnections\":\(service.failedConnections),"
            out += "\"bytesIn\":\(service.bytesIn),\"bytesOut\":\(service.bytesOut),"
            out += "\"protocol\":\(quote(config.transport.rawValue)),"
            if config.transport == .udp {
                out += "\"datagramsIn\":\(service.datagramsIn),\"datagramsOut\":\(service.datagramsOut),\"droppedDatagrams\":\(service.droppedDatagrams),"
            }
            out += "\"queued\":\(service.queued),\"queueTimeouts\":\(service.queueTimeouts),"
            out += "\"balance\":\(quote(config.balance.rawValue)),\"proxyProtocol\":\(quote(config.proxyProtocol.rawValue)),"
            out += "\"healthCheck\":\(config.healthCheck.enabled ? quote("on") : quote("off")),"
            out += "\"endpoints\":["
            out += service.endpoints.map(endpointJSON).joined(separator: ",")
            out += "]}"
        }
        out += "]}\n"
        return out
    }

    /// One endpoint's entry of `/stats` (also the answer to a runtime command).
    public static func endpointJSON(_ endpoint: ServiceSnapshot.Endpoint) -> String {
        var out = "{\"address\":\(quote(endpoint.config.name)),\"state\":\(quote(endpoint.isUp ? "up" : "down")),"
        out += "\"admin\":\(quote(endpoint.config.adminState.rawValue)),"
        out += "\"source\":\(quote(endpoint.config.source)),"
        out += "\"weight\":\(endpoint.config.weight),\"maxConnections\":\(endpoint.config.maxConnections.map(String.init) ?? "null"),"
        out += "\"activeConnections\":\(endpoint.activeConnections),\"totalConnections\":\(endpoint.totalConnections),"
        out += "\"failedConnects\":\(endpoint.failedConnects),"
        out += "\"bytesIn\":\(endpoint.bytesIn),\"bytesOut\":\(endpoint.bytesOut),"
        out += "\"checks\":{\"passed\":\(endpoint.checksPassed),\"failed\":\(endpoint.checksFailed),"
        out += "\"consecutiveFailures\":\(endpoint.health.consecutiveFailures),\"consecutivePasses\":\(endpoint.health.consecutivePasses)},"
        out += "\"lastCheck\":\(endpoint.lastCheck.map(lastCheckJSON) ?? "null")}"
        return out
    }

    static func lastCheckJSON(_ check: HealthCheckResult) -> String {
        "{\"ok\":\(check.ok),\"reason\":\(quote(check.reason)),\"durationMs\":\(seconds(check.duration * 1000)),\"at\":\(seconds(check.at))}"
    }

    /// A JSON string literal.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func seconds(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    // MARK: Prometheus

    public static func prometheus(services live: [Service], info: RuntimeInfo, workers: [Workers.Figures] = [], dns: [DNSDiscovery.Status] = [],
                                  etcd: EtcdDiscovery.Status? = nil, accessLog: AccessLog.Figures = AccessLog.Figures(),
                                  listeners: [ListenerFigures] = []) -> String {
        let services = live.map { $0.snapshot() }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: () -> Void) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            samples()
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: some CustomStringConvertible) {
            out += name
            if !labels.isEmpty {
                out += "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
            }
            out += " \(value)\n"
        }
        func eachEndpoint(_ body: (ServiceSnapshot, ServiceSnapshot.Endpoint, [(String, String)]) -> Void) {
            for service in services {
                for endpoint in service.endpoints {
                    body(service, endpoint, [("service", service.name), ("endpoint", endpoint.config.name)])
                }
            }
        }

        family("balancerd_build_info", "gauge", "The running version.") {
            sample("balancerd_build_info", [("version", BalancerVersion.string)], 1)
        }
        family("balancerd_uptime_seconds", "gauge", "Seconds since balancerd started.") {
            sample("balancerd_uptime_seconds", [], seconds(info.uptime))
        }
        family("balancerd_config_generation", "gauge", "Configuration generation: 1 at start, one more per successful reload.") {
            sample("balancerd_config_generation", [], info.generation)
        }
        family("balancerd_config_reloads_total", "counter", "Configuration reloads by result.") {
            sample("balancerd_config_reloads_total", [("result", "success")], info.reloadSuccesses)
            sample("balancerd_config_reloads_total", [("result", "failure")], info.reloadFailures)
        }
        family("balancerd_worker_connections_accepted_total", "counter", "Client connections accepted by each worker loop.") {
            for (index, worker) in workers.enumerated() {
                sample("balancerd_worker_connections_accepted_total", [("worker", String(index))], worker.acceptedConnections)
            }
        }
        family("balancerd_worker_connections_active", "gauge", "Client connections open on each worker loop.") {
            for (index, worker) in workers.enumerated() {
                sample("balancerd_worker_connections_active", [("worker", String(index))], worker.openConnections)
            }
        }
        family("balancerd_service_connections_total", "counter", "Client connections accepted by a service, served or not.") {
            for service in services { sample("balancerd_service_connections_total", [("service", service.name)], service.totalConnections) }
        }
        family("balancerd_service_connections_active", "gauge", "Client connections open on a service.") {
            for service in services { sample("balancerd_service_connections_active", [("service", service.name)], service.activeConnections) }
        }
        family("balancerd_service_failed_connections_total", "counter", "Client connections a service could not serve at all.") {
            for service in services { sample("balancerd_service_failed_connections_total", [("service", service.name)], service.failedConnections) }
        }
        family("balancerd_service_queued", "gauge", "Connections waiting in a service's queue for a free endpoint slot.") {
            for service in services { sample("balancerd_service_queued", [("service", service.name)], service.queued) }
        }
        family("balancerd_service_queue_timeouts_total", "counter", "Connections closed after waiting queue.timeout.") {
            for service in services { sample("balancerd_service_queue_timeouts_total", [("service", service.name)], service.queueTimeouts) }
        }
        family("balancerd_service_datagrams_total", "counter", "UDP datagrams relayed: in from clients, out to clients, or dropped.") {
            for service in services where service.config.transport == .udp {
                sample("balancerd_service_datagrams_total", [("service", service.name), ("result", "in")], service.datagramsIn)
                sample("balancerd_service_datagrams_total", [("service", service.name), ("result", "out")], service.datagramsOut)
                sample("balancerd_service_datagrams_total", [("service", service.name), ("result", "dropped")], service.droppedDatagrams)
            }
        }
        family("balancerd_connections_total", "counter", "Client connections served by an endpoint.") {
            eachEndpoint { _, endpoint, labels in sample("balancerd_connections_total", labels, endpoint.totalConnections) }
        }
        family("balancerd_connections_active", "gauge", "Client connections open to an endpoint.") {
            eachEndpoint { _, endpoint, labels in sample("balancerd_connections_active", labels, endpoint.activeConnections) }
        }
        family("balancerd_bytes_total", "counter", "Bytes relayed: in from clients to the endpoint, out from the endpoint to clients.") {
            eachEndpoint { _, endpoint, labels in
                sample("balancerd_bytes_total", labels + [("direction", "in")], endpoint.bytesIn)
                sample("balancerd_bytes_total", labels + [("direction", "out")], endpoint.bytesOut)
            }
        }
        family("balancerd_endpoint_up", "gauge", "1 while the endpoint is up, 0 while it is down.") {
            eachEndpoint { _, endpoint, labels in sample("balancerd_endpoint_up", labels, endpoint.isUp ? 1 : 0) }
        }
        family("balancerd_endpoint_failed_connects_total", "counter", "Connects made for clients that failed (refused, reset, timed out).") {
            eachEndpoint { _, endpoint, labels in sample("balancerd_endpoint_failed_connects_total", labels, endpoint.failedConnects) }
        }
        family("balancerd_health_checks_total", "counter", "Active health checks by result.") {
            eachEndpoint { _, endpoint, labels in
                sample("balancerd_health_checks_total", labels + [("result", "pass")], endpoint.checksPassed)
                sample("balancerd_health_checks_total", labels + [("result", "fail")], endpoint.checksFailed)
            }
        }
        family("balancerd_health_check_duration_seconds", "histogram", "How long active health checks took, from connect to verdict.") {
            for service in services {
                let histogram = service.checkDurations
                let name = "balancerd_health_check_duration_seconds"
                for (bound, count) in zip(CheckDurationHistogram.bounds.map { String($0) } + ["+Inf"], histogram.cumulative) {
                    sample(name + "_bucket", [("service", service.name), ("le", bound)], count)
                }
                sample(name + "_sum", [("service", service.name)], histogram.sum)
                sample(name + "_count", [("service", service.name)], histogram.count)
            }
        }
        family("balancerd_dns_resolutions_total", "counter", "Resolutions of each name followed, by result.") {
            for name in dns {
                let label = name.name
                sample("balancerd_dns_resolutions_total", [("name", label), ("result", "success")], name.successes)
                sample("balancerd_dns_resolutions_total", [("name", label), ("result", "failure")], name.failures)
                sample("balancerd_dns_resolutions_total", [("name", label), ("result", "nxdomain")], name.notFound)
            }
        }
        family("balancerd_access_log_lines_total", "counter", "Connection log lines, written or dropped (a full buffer or a file that cannot be written).") {
            sample("balancerd_access_log_lines_total", [("result", "written")], accessLog.written)
            sample("balancerd_access_log_lines_total", [("result", "dropped")], accessLog.dropped)
        }
        family("balancerd_listener_closed_total", "counter", "Connections to an address shared by server name closed before reaching a service, by why.") {
            for listener in listeners {
                sample("balancerd_listener_closed_total", [("listen", listener.listen), ("reason", "unmatched")], listener.unmatched)
                sample("balancerd_listener_closed_total", [("listen", listener.listen), ("reason", "not-tls")], listener.notTLS)
                sample("balancerd_listener_closed_total", [("listen", listener.listen), ("reason", "hello-timeout")], listener.timeouts)
            }
        }
        if let etcd {
            family("balancerd_discovery_connected", "gauge", "1 while the discovery store is connected and watched, else 0.") {
                sample("balancerd_discovery_connected", [("store", "etcd")], etcd.connected ? 1 : 0)
            }
            family("balancerd_discovery_updates_total", "counter", "Keys from the discovery store, applied or rejected.") {
                sample("balancerd_discovery_updates_total", [("store", "etcd"), ("result", "applied")], etcd.applied)
                sample("balancerd_discovery_updates_total", [("store", "etcd"), ("result", "rejected")], etcd.rejectedTotal)
            }
        }
        return out
    }

    private static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
