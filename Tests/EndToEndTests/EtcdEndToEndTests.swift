import Foundation
import Glibc
import Testing

/// Discovery from etcd, against real etcd members (Debian's etcd-server 3.4) on loopback
/// ports, each started and stopped by its test.
@Suite struct EtcdEndToEndTests {
    /// A file with one service `web` (its `endpoints` as given) following `etcd`.
    private func config(_ etcd: EtcdCluster, port: UInt16, admin: UInt16, endpoints: [String] = [], extra: [String] = [],
                        defaults: [String] = ["healthCheck: off"]) -> String {
        var lines = ["admin:", "  listen: 127.0.0.1:\(admin)"] + etcd.discoveryConfig()
        lines += ["defaults:"] + defaults.map { "  " + $0 }
        lines += ["services:", "  - name: web", "    listen: 127.0.0.1:\(port)"] + extra.map { "    " + $0 }
        lines.append(endpoints.isEmpty ? "    endpoints: []" : "    endpoints: [\(endpoints.joined(separator: ", "))]")
        return lines.joined(separator: "\n") + "\n"
    }

    private func stats(_ admin: UInt16) -> [String: Any] { (try? HTTPClient.stats(adminPort: admin)) ?? [:] }

    private func service(_ admin: UInt16, _ name: String) -> [String: Any]? {
        (stats(admin)["services"] as? [[String: Any]])?.first { $0["name"] as? String == name }
    }

    private func endpoints(_ admin: UInt16, _ name: String = "web") -> [String] {
        ((service(admin, name)?["endpoints"] as? [[String: Any]]) ?? []).compactMap { $0["address"] as? String }
    }

    private func etcdStatus(_ admin: UInt16) -> [String: Any] {
        ((stats(admin)["discovery"] as? [String: Any])?["etcd"] as? [String: Any]) ?? [:]
    }

    @Test func service_definedOnlyInEtcd_serves_andStatsShowTheStore() throws {
        let etcd = try EtcdCluster()
        let backend = try BackendProcess(name: "a")
        let apiPort = Harness.freePort()
        try etcd.put("/balancerd/services/api", #"{"listen": "127.0.0.1:\#(apiPort)", "endpoints": ["\#(backend.address)"]}"#)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { service(admin, "api") != nil })
        #expect(try TestClient(port: apiPort).readLine() == "a")
        let api = service(admin, "api") ?? [:]
        #expect(api["source"] as? String == "etcd")
        #expect(service(admin, "web")?["source"] as? String == "file")
        let store = etcdStatus(admin)
        #expect(store["connected"] as? Bool == true)
        #expect(store["revision"] as? Int ?? 0 >= 2)
        #expect(store["member"] as? String == etcd.clientURL(0))
        #expect(store["lastError"] is NSNull)
        #expect((store["rejected"] as? [Any])?.isEmpty == true)
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_discovery_connected{store=\"etcd\"} 1"))
        #expect(metrics.contains("balancerd_discovery_updates_total{store=\"etcd\",result=\"applied\"}"))
        withExtendedLifetime(daemon) {}
    }

    @Test func endpoint_putDeleteAndLeaseExpiry_areInForceWithinASecond() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { etcdStatus(admin)["connected"] as? Bool == true })
        // No endpoint yet: closed at once.
        #expect(try TestClient(port: port, timeout: 2).waitForClose() != nil)
        let put = Date()
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        #expect(Harness.waitUntil(timeout: 1) { (try? TestClient(port: port, timeout: 1).readLine()) == "a" })
        print("etcd put to first connection served: \(Int(Date().timeIntervalSince(put) * 1000)) ms (including etcdctl)")
        let lease = try etcd.grantLease(ttl: 2)
        try etcd.put("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"", lease: lease)
        #expect(Harness.waitUntil(timeout: 1.5) { endpoints(admin).count == 2 })
        #expect(Set(try TestClient.answers(port, count: 4)) == ["a", "b"])
        // Nobody renews the lease: pod-b vanishes by itself.
        #expect(Harness.waitUntil(timeout: 6) { endpoints(admin) == [a.address] })
        try etcd.delete("/balancerd/endpoints/web/pod-a")
        #expect(Harness.waitUntil(timeout: 1.5) { endpoints(admin).isEmpty })
        withExtendedLifetime(daemon) {}
    }

    @Test func badValue_isRejectedAlone_keepsTheServiceAsItWas_andLeavesRejectedOnceFixed() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let apiPort = Harness.freePort(), port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/services/api", #"{"listen": "127.0.0.1:\#(apiPort)", "endpoints": ["\#(a.address)"]}"#)
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { service(admin, "api") != nil })
        try etcd.put("/balancerd/services/api", #"{"listen": "127.0.0.1:\#(apiPort)", "endpoints": ["\#(a.address)"], "retries": "many"}"#)
        try etcd.put("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"")
        #expect(Harness.waitUntil(timeout: 2) { (etcdStatus(admin)["rejected"] as? [[String: Any]])?.count == 1 })
        let rejection = (etcdStatus(admin)["rejected"] as? [[String: Any]])?.first ?? [:]
        #expect(rejection["key"] as? String == "/balancerd/services/api")
        #expect((rejection["error"] as? String)?.contains("retries: 'many' is not a whole number") == true)
        #expect(rejection["revision"] as? Int ?? 0 > 1)
        #expect(daemon.log.contains("etcd: key /balancerd/services/api (revision"))
        // The rest applied; the rejected key's service goes on as it was.
        #expect(Harness.waitUntil(timeout: 2) { endpoints(admin) == [b.address] })
        #expect(try TestClient(port: apiPort).readLine() == "a")
        try etcd.put("/balancerd/services/api", #"{"listen": "127.0.0.1:\#(apiPort)", "endpoints": ["\#(b.address)"]}"#)
        #expect(Harness.waitUntil(timeout: 2) { (etcdStatus(admin)["rejected"] as? [Any])?.isEmpty == true })
        #expect(Harness.waitUntil(timeout: 2) { (try? TestClient(port: apiPort, timeout: 1).readLine()) == "b" })
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_discovery_updates_total{store=\"etcd\",result=\"rejected\"} 1"))
    }

    @Test func clash_byNameOrListen_isRejected_andTheFilesServiceStays() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/services/web", #"{"listen": "127.0.0.1:\#(Harness.freePort())", "endpoints": []}"#)
        try etcd.put("/balancerd/services/other", #"{"listen": "127.0.0.1:\#(port)", "endpoints": []}"#)
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin, endpoints: [a.address]))
        #expect(Harness.waitUntil(timeout: 5) { (etcdStatus(admin)["rejected"] as? [Any])?.count == 2 })
        #expect((stats(admin)["services"] as? [Any])?.count == 1)
        #expect(try TestClient(port: port).readLine() == "a")
        withExtendedLifetime(daemon) {}
    }

    @Test func removedService_closesItsListener_andItsOpenConnectionFinishes() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a")
        let apiPort = Harness.freePort(), port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/services/api", #"{"listen": "127.0.0.1:\#(apiPort)", "endpoints": ["\#(a.address)"]}"#)
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { service(admin, "api") != nil })
        let open = try TestClient(port: apiPort)
        #expect(try open.readLine() == "a")
        try etcd.delete("/balancerd/services/api")
        #expect(Harness.waitUntil(timeout: 2) { (try? TestClient(port: apiPort, timeout: 1)) == nil })
        try open.send("bye\n")
        #expect(try open.readLine() == "bye")
        withExtendedLifetime(daemon) {}
    }

    @Test func etcdKilledForSeconds_servesThroughout_andAppliesWhatChangedOnceBack() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(admin) == [a.address] })
        etcd.kill(member: 0)
        let until = Date().addingTimeInterval(4)
        var served = 0
        while Date() < until {
            #expect(try TestClient(port: port).readLine() == "a")
            served += 1
            usleep(100_000)
        }
        #expect(served > 20)
        #expect(etcdStatus(admin)["connected"] as? Bool == false)
        #expect(etcdStatus(admin)["lastError"] is String)
        #expect(endpoints(admin) == [a.address], "nothing is removed while the store is away")
        try etcd.restart(member: 0)
        try etcd.putWhenQuorate("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"")
        try etcd.delete("/balancerd/endpoints/web/pod-a")
        // Backoff is at most 5 s; then the whole prefix is read again.
        #expect(Harness.waitUntil(timeout: 8) { endpoints(admin) == [b.address] })
        #expect(etcdStatus(admin)["connected"] as? Bool == true)
        #expect(try TestClient(port: port).readLine() == "b")
    }

    @Test func compaction_pastTheRevisionsSeen_doesNotStopTheWatch() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { etcdStatus(admin)["connected"] as? Bool == true })
        for round in 0..<5 { try etcd.put("/balancerd/endpoints/web/churn", "\"127.0.0.\(round + 2):9\"") }
        try etcd.delete("/balancerd/endpoints/web/churn")
        try etcd.compact(to: try etcd.revision())
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        #expect(Harness.waitUntil(timeout: 2) { endpoints(admin) == [a.address] })
        // A second daemon starting after the compaction reads the same.
        let second = Harness.freePort(), secondAdmin = Harness.freePort()
        let other = try DaemonProcess(config: config(etcd, port: second, admin: secondAdmin))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(secondAdmin) == [a.address] })
        withExtendedLifetime((daemon, other)) {}
    }

    @Test func threeMemberCluster_whenTheMemberInUseIsKilled_theNextOneTakesOver() throws {
        let etcd = try EtcdCluster(members: 3)
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(admin) == [a.address] })
        #expect(etcdStatus(admin)["member"] as? String == etcd.clientURL(0))
        etcd.kill(member: 0)
        try etcd.putWhenQuorate("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"")
        #expect(Harness.waitUntil(timeout: 8) { endpoints(admin) == [a.address, b.address] })
        #expect(etcdStatus(admin)["member"] as? String != etcd.clientURL(0))
        #expect(Set(try TestClient.answers(port, count: 4)) == ["a", "b"])
        withExtendedLifetime(daemon) {}
    }

    @Test func leaderLost_theMapStays_servingGoesOn_andTheStoreIsReadAgainOnceQuorate() throws {
        let etcd = try EtcdCluster(members: 3)
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(admin) == [a.address] && etcdStatus(admin)["connected"] as? Bool == true })
        // Two of three gone: the member left has no leader, and says so to a watch that asks.
        etcd.kill(member: 1)
        etcd.kill(member: 2)
        #expect(Harness.waitUntil(timeout: 15) { etcdStatus(admin)["connected"] as? Bool == false })
        for _ in 0..<10 { #expect(try TestClient(port: port).readLine() == "a") }
        #expect(endpoints(admin) == [a.address], "nothing is removed while there is no leader")
        try etcd.restart(member: 1)
        try etcd.restart(member: 2)
        try etcd.putWhenQuorate("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"")
        #expect(Harness.waitUntil(timeout: 15) { endpoints(admin) == [a.address, b.address] })
        withExtendedLifetime(daemon) {}
    }

    @Test func tls_withClientCertificates_readsTheStore() throws {
        let etcd = try EtcdCluster(tls: true)
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort(), admin = Harness.freePort()
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(admin) == [a.address] })
        #expect((etcdStatus(admin)["member"] as? String)?.hasPrefix("https://") == true)
        #expect(try TestClient(port: port).readLine() == "a")
        withExtendedLifetime(daemon) {}
    }

    @Test func twoDaemons_onTheSameStore_listTheSameEndpoints_andAgreeOnSourceIP() throws {
        let etcd = try EtcdCluster()
        let backends = try ["a", "b", "c", "d"].map { try BackendProcess(name: $0) }
        // Put out of order: pod-d first, pod-a last.
        for index in [3, 1, 2, 0] {
            try etcd.put("/balancerd/endpoints/web/pod-\(backends[index].name)", "\"\(backends[index].address)\"")
        }
        let first = Harness.freePort(), firstAdmin = Harness.freePort()
        let second = Harness.freePort(), secondAdmin = Harness.freePort()
        let one = try DaemonProcess(config: config(etcd, port: first, admin: firstAdmin, extra: ["balance: source-ip"]))
        let two = try DaemonProcess(config: config(etcd, port: second, admin: secondAdmin, extra: ["balance: source-ip"]))
        #expect(Harness.waitUntil(timeout: 5) { endpoints(firstAdmin).count == 4 && endpoints(secondAdmin).count == 4 })
        #expect(endpoints(firstAdmin) == endpoints(secondAdmin))
        #expect(endpoints(firstAdmin) == backends.map(\.address), "ordered by key: pod-a … pod-d")
        for host in 2...31 {
            let source = "127.0.0.\(host)"
            #expect(try TestClient(port: first, source: source).readLine() == (try TestClient(port: second, source: source).readLine()))
        }
        withExtendedLifetime((one, two)) {}
    }

    @Test func etcdAbsentAtStart_theFilesServicesServe_readyAfterDialTimeout_andTheStoreJoinsLater() throws {
        let etcd = try EtcdCluster(start: false)
        let a = try BackendProcess(name: "a"), b = try BackendProcess(name: "b")
        let notify = try NotifySocket()
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin, endpoints: [a.address]),
                                       environment: ["NOTIFY_SOCKET": notify.path])
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("READY=1") } != nil, "READY=1 after dialTimeout without etcd")
        try etcd.startAll()
        try etcd.put("/balancerd/endpoints/web/pod-b", "\"\(b.address)\"")
        #expect(Harness.waitUntil(timeout: 8) { endpoints(admin) == [a.address, b.address] })
        withExtendedLifetime(daemon) {}
    }

    @Test func ready_waitsForTheFirstReadFromEtcd() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a")
        try etcd.put("/balancerd/endpoints/web/pod-a", "\"\(a.address)\"")
        let notify = try NotifySocket()
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin), environment: ["NOTIFY_SOCKET": notify.path])
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("READY=1") } != nil)
        // Once READY=1 is sent, etcd's endpoint is in force.
        #expect(endpoints(admin) == [a.address])
        #expect(try TestClient(port: port).readLine() == "a")
        withExtendedLifetime(daemon) {}
    }

    @Test func registerScript_putsTheEndpointWithALease_andDeregistersWhenStopped() throws {
        let etcd = try EtcdCluster()
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: config(etcd, port: port, admin: admin))
        // Spawned with no signal blocked, so that its SIGTERM arrives.
        let script = try Harness.spawn("/bin/bash", [Harness.repositoryRoot.appendingPathComponent("scripts/etcd-register.sh").path, "web", "pod-a", a.address, "3"],
                                       environment: ["ETCDCTL_ENDPOINTS": etcd.clientURL(0)])
        var status: Int32 = 0
        defer {
            kill(script, SIGKILL)
            waitpid(script, &status, 0)
        }
        #expect(Harness.waitUntil(timeout: 5) { endpoints(admin) == [a.address] })
        // Kept alive past its TTL.
        usleep(3_500_000)
        #expect(endpoints(admin) == [a.address])
        #expect(try TestClient(port: port).readLine() == "a")
        kill(script, SIGTERM)
        #expect(Harness.waitUntil(timeout: 2) { endpoints(admin).isEmpty }, "revoked at once, not after the TTL")
        #expect(Harness.waitUntil(timeout: 3) { waitpid(script, &status, WNOHANG) == script })
        withExtendedLifetime(daemon) {}
    }
}
