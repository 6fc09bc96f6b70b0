/// Runs the active checks of every endpoint of every service whose checks are on.
///
/// Checks are spread evenly over each interval (120 services × 3 endpoints do not all
/// connect in the same instant): the i-th of n probes sharing an interval starts at
/// i/n of it.
public final class HealthChecker {
    private let loop: EventLoop
    private var probes: [HealthProbe] = []

    public init(loop: EventLoop) {
        self.loop = loop
    }

    public func start(services: [Service]) {
        // UDP services without healthCheck.port are checked passively (ICMP port unreachable).
        for service in services where service.config.activeChecks {
            for endpoint in Self.checked(service) {
                probes.append(HealthProbe(loop: loop, service: service, endpoint: endpoint))
            }
        }
        let offsets = Self.startOffsets(intervals: probes.map { $0.service.config.healthCheck.interval })
        for (probe, offset) in zip(probes, offsets) { probe.start(offset: offset) }
        if !probes.isEmpty {
            Log.info("health checks: \(probes.count) endpoint(s) checked, spread over their intervals")
        }
    }

    /// The endpoints of `service` to check: all but those in maintenance (drained ones are
    /// checked, so that their health is known when they come back).
    private static func checked(_ service: Service) -> [Endpoint] {
        let resting = Set(service.config.endpoints.filter { $0.adminState == .maintenance }.map(\.address))
        return service.endpoints.filter { !resting.contains($0.address) }
    }

    /// When each probe first fires, for probes with these intervals: the probes sharing an
    /// interval are spaced evenly across it, in order.
    public static func startOffsets(intervals: [Double]) -> [Double] {
        var total: [Double: Int] = [:]
        for interval in intervals { total[interval, default: 0] += 1 }
        var seen: [Double: Int] = [:]
        return intervals.map { interval in
            let index = seen[interval, default: 0]
            seen[interval] = index + 1
            return interval * Double(index) / Double(total[interval]!)
        }
    }

    public func stop() {
        probes.forEach { $0.stop() }
        probes.removeAll()
    }

    /// Brings the probes in line with `services` after a reload or a DNS change, without
    /// restarting the ones that stay: an endpoint kept with the same check settings keeps
    /// its probe and schedule (a name whose answer changes every refresh must not keep
    /// pushing the other endpoints' checks back). New endpoints are checked from within
    /// one interval, spread like the others.
    public func sync(services: [Service]) {
        var kept: [ObjectIdentifier: HealthProbe] = [:]
        for probe in probes { kept[ObjectIdentifier(probe.endpoint)] = probe }
        var next: [HealthProbe] = []
        var fresh: [HealthProbe] = []
        for service in services {
            let check = service.config.healthCheck
            guard service.config.activeChecks else { continue }
            for endpoint in Self.checked(service) {
                if let probe = kept[ObjectIdentifier(endpoint)], probe.service === service, probe.config == check {
                    kept.removeValue(forKey: ObjectIdentifier(endpoint))
                    next.append(probe)
                } else {
                    let probe = HealthProbe(loop: loop, service: service, endpoint: endpoint)
                    next.append(probe)
                    fresh.append(probe)
                }
            }
        }
        kept.values.forEach { $0.stop() }
        let offsets = Self.startOffsets(intervals: fresh.map { $0.service.config.healthCheck.interval })
        for (probe, offset) in zip(fresh, offsets) { probe.start(offset: offset) }
        probes = next
        if !fresh.isEmpty || !kept.isEmpty {
            Log.info("health checks: \(next.count) endpoint(s) checked (\(fresh.count) new, \(kept.count) stopped)")
        }
    }
}
