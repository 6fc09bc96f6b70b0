import Foundation
import Glibc
import Testing

/// Endpoints that follow DNS names, against real DNS servers on 127.0.0.1: dnsmasq for the
/// ordinary cases, `dns-server.py` (dnslib) for outages, SERVFAIL, NXDOMAIN, SRV and bad
/// answers. Backends listen on 127.0.0.2, .3, .4 … on one port, as pods behind a name do.
@Suite struct DNSEndToEndTests {
    /// Backends named `names` on 127.0.0.2, 127.0.0.3, … all on one port.
    private func backends(_ names: [String]) throws -> (port: UInt16, list: [BackendProcess]) {
        let port = Harness.freePort()
        let list = try names.enumerated().map { index, name in try BackendProcess(name: name, host: "127.0.0.\(index + 2)", port: port) }
        return (port, list)
    }

    /// One service on 127.0.0.1:`port` whose endpoints are `endpoints`, asking `nameserver`.
    private func config(port: UInt16, admin: UInt16, nameserver: String, endpoints: [String],
                        refresh: String = "300ms", hold: String = "30s", service extra: [String] = ["healthCheck: off"]) -> String {
        ConfigText.service(port: port, endpoints: endpoints, service: extra + ["dns: {refresh: \(refresh), hold: \(hold)}"],
                           top: ["resolvers:", "  nameservers: [\(nameserver)]", "  timeout: 200ms", "  attempts: 1"],
                           adminPort: admin)
    }

    private func endpointAddresses(_ admin: UInt16) -> [String] {
        ((HTTPClient.firstService(adminPort: admin)["endpoints"] as? [[String: Any]]) ?? []).compactMap { $0["address"] as? String }
    }

    private func dnsStatus(_ admin: UInt16) -> [[String: Any]] {
        ((try? HTTPClient.stats(adminPort: admin))?["dns"] as? [[String: Any]]) ?? []
    }

    @Test func name_withTwoThenThreeAddresses_roundRobinsInSortedOrder_andShowsWhereEachCameFrom() throws {
        let (backendPort, pods) = try backends(["a", "b", "c"])
        let dns = try DnsmasqProcess(hosts: [("127.0.0.3", "web.test"), ("127.0.0.2", "web.test")])
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"]))
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 2 })
        #expect(try TestClient.answers(port, count: 4) == ["a", "b", "a", "b"])
        let endpoint = (HTTPClient.firstService(adminPort: admin)["endpoints"] as? [[String: Any]])?.first ?? [:]
        #expect(endpoint["source"] as? String == "dns:web.test:\(backendPort)")
        let name = dnsStatus(admin).first ?? [:]
        #expect(name["name"] as? String == "web.test")
        #expect(name["type"] as? String == "A/AAAA")
        #expect(name["addresses"] as? Int == 2)
        #expect(name["lastResolved"] is Double || name["lastResolved"] is Int)
        #expect(name["lastError"] is NSNull)

        let changed = Date()
        try dns.setHosts([("127.0.0.3", "web.test"), ("127.0.0.4", "web.test"), ("127.0.0.2", "web.test")])
        // In force within one refresh (300 ms) of the change; the bound leaves room for a slow machine.
        #expect(Harness.waitUntil(timeout: 3) { endpointAddresses(admin).count == 3 })
        print("dns change to three addresses in force after \(Int(Date().timeIntervalSince(changed) * 1000)) ms")
        #expect(endpointAddresses(admin) == ["127.0.0.2:\(backendPort)", "127.0.0.3:\(backendPort)", "127.0.0.4:\(backendPort)"])
        #expect(try TestClient.answers(port, count: 6) == ["a", "b", "c", "a", "b", "c"])
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_dns_resolutions_total{name=\"web.test\",result=\"success\"}"))
        withExtendedLifetime((pods, daemon)) {}
    }

    @Test func address_whenItVanishes_getsNoNewConnection_whileItsOpenOneGoesOnRelaying() throws {
        let (backendPort, pods) = try backends(["a", "b"])
        let dns = try DnsmasqProcess(hosts: [("127.0.0.2", "web.test"), ("127.0.0.3", "web.test")])
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"]))
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 2 })
        _ = try TestClient(port: port).readLine()  // a
        let open = try TestClient(port: port)
        #expect(try open.readLine() == "b")
        try dns.setHosts([("127.0.0.2", "web.test")])
        #expect(Harness.waitUntil(timeout: 3) { endpointAddresses(admin) == ["127.0.0.2:\(backendPort)"] })
        #expect(try TestClient.answers(port, count: 3) == ["a", "a", "a"])
        // The connection to the vanished address still relays both ways.
        try open.send("still here\n")
        #expect(try open.readLine() == "still here")
        open.shutdownWrite()
        #expect(String(decoding: try open.readToEnd(), as: UTF8.self).contains("eof"))
        withExtendedLifetime((pods, daemon)) {}
    }

    @Test func srv_weightsShareTheLowestPriority_andTheNextPriorityTakesOverWhenItIsDown() throws {
        let (backendPort, pods) = try backends(["a", "b", "c"])
        let zone = DNSZone(records: [
            "_web._tcp.test": .init(SRV: [
                .init(priority: 10, weight: 3, port: Int(backendPort), target: "a.test"),
                .init(priority: 10, weight: 1, port: Int(backendPort), target: "b.test"),
                .init(priority: 20, weight: 0, port: Int(backendPort), target: "c.test"),
            ]),
            "a.test": .init(A: ["127.0.0.2"]), "b.test": .init(A: ["127.0.0.3"]), "c.test": .init(A: ["127.0.0.4"]),
        ])
        let dns = try DNSServerProcess(zone: zone)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(
            port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["srv: _web._tcp.test"],
            service: ["healthCheck: {interval: 200ms, timeout: 200ms, rise: 1, fall: 1}"]))
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 3 })
        let endpoints = (HTTPClient.firstService(adminPort: admin)["endpoints"] as? [[String: Any]]) ?? []
        #expect(endpoints.map { $0["weight"] as? Int } == [3, 1, 1])
        #expect(endpoints.first?["source"] as? String == "srv:_web._tcp.test")
        let answers = try TestClient.answers(port, count: 8)
        #expect(answers.filter { $0 == "a" }.count == 6, "\(answers)")
        #expect(answers.filter { $0 == "b" }.count == 2, "\(answers)")
        // Both of priority 10 go: priority 20 takes over.
        pods[0].kill()
        pods[1].kill()
        #expect(Harness.waitUntil(timeout: 5) { (try? TestClient(port: port, timeout: 1).readLine()) == "c" })
        #expect(try TestClient.answers(port, count: 3) == ["c", "c", "c"])
        withExtendedLifetime((pods, daemon, dns)) {}
    }

    @Test(arguments: ["drop", "servfail", "refused", "malformed"])
    func outage_ofManyRefreshes_keepsTheLastAnswer_andServesThroughout(behaviour: String) throws {
        let (backendPort, pods) = try backends(["a", "b"])
        var zone = DNSZone(records: ["web.test": .init(A: ["127.0.0.2", "127.0.0.3"])])
        let dns = try DNSServerProcess(zone: zone)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"],
                                                      refresh: "200ms"))
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 2 })
        zone.all = behaviour
        try dns.update(zone)
        let before = dns.queries(name: "web.test")
        // About ten refreshes of failure; every connection is served meanwhile.
        let until = Date().addingTimeInterval(2.2)
        var served: [String] = []
        while Date() < until {
            served.append(try TestClient(port: port).readLine())
            usleep(100_000)
        }
        #expect(Set(served) == ["a", "b"])
        #expect(dns.queries(name: "web.test") - before >= 5)
        #expect(endpointAddresses(admin).count == 2)
        #expect(dnsStatus(admin).first?["lastError"] is String)
        #expect(daemon.logCount("keeping the last answer") == 1, "an outage is logged once")
        zone.all = nil
        try dns.update(zone)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("web.test resolves again") })
        #expect(dnsStatus(admin).first?["lastError"] is NSNull)
        withExtendedLifetime(pods) {}
    }

    @Test func nxdomain_removesTheEndpointsOnlyAfterHold() throws {
        let (backendPort, pods) = try backends(["a"])
        let dns = try DNSServerProcess(zone: DNSZone(records: ["web.test": .init(A: ["127.0.0.2"])]))
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"],
                                                      refresh: "200ms", hold: "2s"))
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 1 })
        try dns.update(DNSZone(records: [:]))
        let gone = Date()
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("unless it comes back") })
        // Within hold: still served.
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).isEmpty })
        #expect(Date().timeIntervalSince(gone) >= 1.9, "removed before dns.hold")
        // No endpoint: a new connection is closed at once.
        #expect(try TestClient(port: port, timeout: 2).waitForClose() != nil)
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(!metrics.contains("balancerd_dns_resolutions_total{name=\"web.test\",result=\"nxdomain\"} 0"))
        withExtendedLifetime(pods) {}
    }

    @Test func start_withoutDNS_isNoError_andTheNameIsServedOnceItResolves() throws {
        let (backendPort, pods) = try backends(["a"])
        var zone = DNSZone(records: ["web.test": .init(A: ["127.0.0.2"])])
        zone.all = "drop"
        let dns = try DNSServerProcess(zone: zone)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"]))
        #expect(daemon.isRunning)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("cannot be resolved yet") })
        #expect(try TestClient(port: port, timeout: 2).waitForClose() != nil)
        zone.all = nil
        try dns.update(zone)
        #expect(Harness.waitUntil(timeout: 3) { endpointAddresses(admin).count == 1 })
        #expect(try TestClient(port: port).readLine() == "a")
        withExtendedLifetime(pods) {}
    }

    @Test func etcHosts_isReadFirst_soLocalhostNeedsNoNameserver() throws {
        let backend = try BackendProcess(name: "a")
        var zone = DNSZone(records: [:])
        zone.all = "drop"
        let dns = try DNSServerProcess(zone: zone)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["localhost:\(backend.port)"]))
        #expect(Harness.waitUntil(timeout: 3) { endpointAddresses(admin).contains("127.0.0.1:\(backend.port)") })
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(dns.queries(name: "localhost") == 0)
        withExtendedLifetime(daemon) {}
    }

    @Test func reload_resolvesEveryNameAgainAtOnce() throws {
        let (backendPort, pods) = try backends(["a", "b"])
        let dns = try DNSServerProcess(zone: DNSZone(records: ["web.test": .init(A: ["127.0.0.2"])]))
        let port = Harness.freePort(), admin = Harness.freePort()
        let text = config(port: port, admin: admin, nameserver: dns.nameserver, endpoints: ["web.test:\(backendPort)"], refresh: "1h")
        let daemon = try DaemonProcess(config: text)
        #expect(Harness.waitUntil(timeout: 5) { endpointAddresses(admin).count == 1 })
        try dns.update(DNSZone(records: ["web.test": .init(A: ["127.0.0.3"])]))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { endpointAddresses(admin) == ["127.0.0.3:\(backendPort)"] })
        #expect(try TestClient(port: port).readLine() == "b")
        withExtendedLifetime(pods) {}
    }

    /// A truncated UDP answer of 1,000 records (retried over TCP), a name that flips every
    /// refresh, and garbage answers: none of it disturbs a transfer in progress on another
    /// service, and the daemon keeps its memory.
    @Test func badAnswers_thousandRecordsFlipsAndGarbage_disturbNothing() throws {
        let (backendPort, pods) = try backends(["a"])
        let many = (0..<1000).map { "127.1.\($0 / 250).\($0 % 250 + 1)" }
        var zone = DNSZone(records: ["many.test": .init(A: many), "flip.test": .init(A: ["127.0.0.2"]), "junk.test": .init(A: ["127.0.0.2"])])
        let dns = try DNSServerProcess(zone: zone)
        let steady = Harness.freePort(), port = Harness.freePort(), admin = Harness.freePort()
        let text = """
        admin: {listen: 127.0.0.1:\(admin)}
        resolvers: {nameservers: [\(dns.nameserver)], timeout: 300ms, attempts: 1}
        defaults: {healthCheck: off, dns: {refresh: 200ms}}
        services:
          - name: steady
            listen: 127.0.0.1:\(steady)
            endpoints: [127.0.0.2:\(backendPort)]
          - name: names
            listen: 127.0.0.1:\(port)
            endpoints: [many.test:\(backendPort), flip.test:\(backendPort), junk.test:\(backendPort)]
        """
        let daemon = try DaemonProcess(config: text)
        #expect(Harness.waitUntil(timeout: 5) { dnsStatus(admin).first { $0["name"] as? String == "many.test" }?["addresses"] as? Int == 1000 })
        #expect(dns.tcpQueries(name: "many.test") > 0, "the truncated answer was retried over TCP")
        zone.behaviour["junk.test"] = "malformed"
        let relay = try TestClient(port: steady)
        #expect(try relay.readLine() == "a")
        let rssBefore = Self.residentKiB(of: daemon.pid)
        for round in 0..<12 {
            zone.records["flip.test"] = .init(A: [round % 2 == 0 ? "127.0.0.3" : "127.0.0.2"])
            try dns.update(zone)
            try relay.send("round \(round)\n")
            #expect(try relay.readLine() == "round \(round)")
            usleep(200_000)
        }
        #expect(daemon.isRunning)
        #expect(dnsStatus(admin).first { $0["name"] as? String == "junk.test" }?["lastError"] is String)
        #expect(try TestClient(port: steady).readLine() == "a")
        if ProcessInfo.processInfo.environment["BALANCERD_SANITIZER"] == nil {
            let growth = Self.residentKiB(of: daemon.pid) - rssBefore
            #expect(growth < 16_384, "RSS grew by \(growth) KiB while names flipped")
        }
        withExtendedLifetime(pods) {}
    }

    private static func residentKiB(of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}
