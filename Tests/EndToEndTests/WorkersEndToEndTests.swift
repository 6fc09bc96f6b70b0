import Foundation
import Glibc
import Testing

/// Several worker loops (`workers: N`): one service order, one set of figures, one reload
/// and one drain across all of them. Each test first makes sure that both workers really
/// accepted connections, so that it exercises the cross-worker path.
@Suite struct WorkersEndToEndTests {
    private func workerFigures(_ admin: UInt16) throws -> [[String: Any]] {
        try HTTPClient.stats(adminPort: admin)["workers"] as? [[String: Any]] ?? []
    }

    private func acceptedPerWorker(_ admin: UInt16) throws -> [Int] {
        try workerFigures(admin).map { $0["acceptedConnections"] as? Int ?? -1 }
    }

    @Test func roundRobin_acrossTwoWorkerLoops_staysExact() throws {
        let backends = try ["a", "b", "c"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), top: ["workers: 2"], adminPort: admin))
        // The kernel spreads connections over the two listening sockets by their source
        // port: each connection may land on either worker, and the order must not care.
        let answers = try (0..<30).map { _ in try TestClient(port: port).readLine() }
        #expect(answers == Array(repeating: ["a", "b", "c"], count: 10).flatMap { $0 })
        let accepted = try acceptedPerWorker(admin)
        #expect(accepted.count == 2)
        #expect(accepted.allSatisfy { $0 > 0 }, "both workers should have accepted some of 30 connections: \(accepted)")
        #expect(accepted.reduce(0, +) == 30)
        #expect(daemon.log.contains("2 worker loop(s)"))
    }

    @Test func stats_withOpenConnectionsOnEveryWorker_sumsThem() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), top: ["workers: 2"], adminPort: admin))
        let clients = try (0..<100).map { _ in try TestClient(port: port) }
        for client in clients { #expect(["a", "b"].contains(try client.readLine())) }
        let stats = try HTTPClient.stats(adminPort: admin)
        let workers = stats["workers"] as? [[String: Any]] ?? []
        let open = workers.map { $0["openConnections"] as? Int ?? -1 }
        #expect(open.count == 2 && open.allSatisfy { $0 > 0 }, "\(open)")
        #expect(open.reduce(0, +) == 100)
        #expect(stats["openConnections"] as? Int == 100)
        let service = HTTPClient.firstService(adminPort: admin)
        #expect(service["activeConnections"] as? Int == 100)
        let endpoints = service["endpoints"] as? [[String: Any]] ?? []
        #expect(endpoints.map { $0["activeConnections"] as? Int ?? -1 } == [50, 50])
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_worker_connections_active{worker=\"1\"}"))
        withExtendedLifetime((clients, daemon)) {}
    }

    @Test func accept_withManyLongLivedClients_evensOutTheWorkersLoad() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), top: ["workers: 2"], adminPort: admin))
        let clients = try (0..<96).map { _ in try TestClient(port: port) }
        for client in clients { #expect(["a", "b"].contains(try client.readLine())) }
        let open = try workerFigures(admin).map { $0["openConnections"] as? Int ?? -1 }
        // The kernel's hash alone leaves splits such as 38 / 58; a worker hands a new
        // connection over once it has 1/8 more than the other (and at least 3).
        #expect(open.count == 2 && open.reduce(0, +) == 96, "\(open)")
        #expect(abs(open[0] - open[1]) <= 8, "\(open)")
        withExtendedLifetime((clients, daemon)) {}
    }

    @Test func reload_withTwoWorkers_movesEveryWorkerToTheNewAddress() throws {
        let backend = try BackendProcess(name: "a")
        let oldPort = Harness.freePort()
        let newPort = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: oldPort, endpoints: [backend.address], top: ["workers: 2"], adminPort: admin))
        let longLived = try TestClient(port: oldPort)
        #expect(try longLived.readLine() == "a")
        // A new worker count waits for a restart; the rest of the reload applies now.
        try daemon.rewriteConfig(ConfigText.service(port: newPort, endpoints: [backend.address], top: ["workers: 3"], adminPort: admin))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 5) { daemon.logCount("reload (SIGHUP) complete") == 1 })
        #expect(daemon.log.contains("workers: 3 takes effect at the next start; running 2"))
        #expect(try workerFigures(admin).count == 2)
        // The old address is closed on both workers; the new one answers on both.
        for _ in 0..<10 { #expect((try? TestClient(port: oldPort, timeout: 1)) == nil) }
        let before = try acceptedPerWorker(admin)
        for _ in 0..<30 { #expect(try TestClient(port: newPort).readLine() == "a") }
        let after = try acceptedPerWorker(admin)
        #expect(zip(before, after).allSatisfy { $1 > $0 }, "both workers should accept on the new address: \(before) → \(after)")
        // The connection made before the reload goes on.
        try longLived.send("x")
        longLived.shutdownWrite()
        #expect(String(decoding: try longLived.readToEnd(), as: UTF8.self) == "xeof 1\n")
    }

    @Test func sigterm_withConnectionsOnEveryWorker_drainsThemAllThenExits() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], top: ["workers: 2"], adminPort: admin))
        var clients = try (0..<20).map { _ in try TestClient(port: port) }
        for client in clients { #expect(try client.readLine() == "a") }
        #expect(try workerFigures(admin).allSatisfy { $0["openConnections"] as? Int ?? 0 > 0 })
        daemon.send(SIGTERM)
        #expect(Harness.waitUntil(timeout: 5) { (try? TestClient(port: port, timeout: 1)) == nil })
        // Every open connection, whichever worker holds it, still relays; the daemon waits
        // for the last one.
        for (index, client) in clients.enumerated() {
            try client.send("\(index)")
            client.shutdownWrite()
            #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "\(index)eof \(String(index).count)\n")
            if index == clients.count - 2 { #expect(daemon.isRunning) }
        }
        clients.removeAll()
        #expect(daemon.waitForExit(timeout: 5) == 0)
        #expect(daemon.log.contains("drain complete"))
    }

    @Test func start_whenAnotherDaemonHoldsThePortWithSeveralWorkers_exitsOne() throws {
        // Both would set SO_REUSEPORT: without a plain bind first, the second daemon would
        // silently share the port with the first.
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let first = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], top: ["workers: 2"]))
        let second = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], top: ["workers: 2"]), waitForStart: false)
        #expect(second.waitForExit(timeout: 5) == 1)
        #expect(second.log.contains("address already in use"))
        #expect(first.isRunning)
    }

    @Test func workers_setToThree_runsThreeLoops() throws {
        let backend = try BackendProcess(name: "a")
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address], top: ["workers: 3"], adminPort: admin))
        #expect(try workerFigures(admin).count == 3)
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/task").count) ?? 0
        #expect(threads >= 3)
    }
}
