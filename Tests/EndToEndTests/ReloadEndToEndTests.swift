import Foundation
import Glibc
import Testing

/// Live reload: SIGHUP and every kind of file change, with nothing dropped.
@Suite struct ReloadEndToEndTests {

    @Test func sighup_whenAnEndpointIsAdded_sendsItTraffic() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        #expect(try TestClient.answers(port, count: 2) == ["a", "a"])
        try daemon.rewriteConfig(ConfigText.service(port: port, endpoints: [a.address, b.address], adminPort: admin))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload (SIGHUP) complete") })
        #expect(Set(try TestClient.answers(port, count: 4)) == ["a", "b"])
        let stats = try HTTPClient.stats(adminPort: admin)
        #expect((stats["config"] as? [String: Any])?["generation"] as? Int ?? 0 >= 2)
    }

    @Test func sighup_whenTheFileDidNotChange_stillCountsAGeneration() throws {
        let a = try BackendProcess(name: "a")
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [a.address], adminPort: admin))
        var config = (try HTTPClient.stats(adminPort: admin))["config"] as? [String: Any] ?? [:]
        #expect(config["generation"] as? Int == 1)
        #expect(config["lastReload"] is NSNull)
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.logCount("reload (SIGHUP) complete") == 1 })
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.logCount("reload (SIGHUP) complete") == 2 })
        config = (try HTTPClient.stats(adminPort: admin))["config"] as? [String: Any] ?? [:]
        #expect(config["generation"] as? Int == 3)
        #expect((config["lastReload"] as? [String: Any])?["ok"] as? Bool == true)
        withExtendedLifetime(a) {}
    }

    @Test func reload_whenTimeoutsChange_newConnectionsGetTheNewSettings() throws {
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        try daemon.rewriteConfig(ConfigText.service(port: port, endpoints: [a.address], service: ["idleTimeout: 300ms"], adminPort: admin))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload (SIGHUP) complete") })
        // Under the old 1h idle timeout this connection would stay open; now it is closed.
        let client = try TestClient(port: port, timeout: 5)
        #expect(try client.readLine() == "a")
        #expect(client.waitForClose() == "eof")
    }

    @Test func reload_whenAServiceIsRemoved_itsPortStopsAccepting() throws {
        let a = try BackendProcess(name: "a")
        let kept = Harness.freePort()
        let removed = Harness.freePort()
        let admin = Harness.freePort()
        let two = """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - {name: kept, listen: 127.0.0.1:\(kept), endpoints: [\(a.address)]}
          - {name: gone, listen: 127.0.0.1:\(removed), endpoints: [\(a.address)]}
        """
        let daemon = try DaemonProcess(config: two)
        #expect(try TestClient(port: removed).readLine() == "a")
        try daemon.rewriteConfig(ConfigText.service(port: kept, endpoints: [a.address], name: "kept", adminPort: admin))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("services +0 -1") })
        #expect((try? TestClient(port: removed, timeout: 1)) == nil)
        #expect(try TestClient(port: kept).readLine() == "a")
    }

    @Test func reload_whenTheFileIsInvalid_keepsTheOldConfigurationAndShowsTheError() throws {
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        try daemon.rewriteConfig("""
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - name: web
            listen: 127.0.0.1:\(port)
            endpoints: [127.0.0.1:99999]
        """)
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload failed: keeping configuration generation 1") })
        #expect(daemon.log.contains("reload rejected: \(daemon.configPath):5:17: services[0].endpoints[0]: port 99999 is out of range (1-65535)"))
        #expect(try TestClient(port: port).readLine() == "a")
        let stats = try HTTPClient.stats(adminPort: admin)
        let config = stats["config"] as? [String: Any] ?? [:]
        #expect(config["generation"] as? Int == 1)
        let last = config["lastReload"] as? [String: Any] ?? [:]
        #expect(last["ok"] as? Bool == false)
        #expect((last["error"] as? String)?.contains(":5:17: services[0].endpoints[0]") == true)
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_config_reloads_total{result=\"failure\"} 1") || metrics.contains("balancerd_config_reloads_total{result=\"failure\"} 2"))
    }

    @Test func reload_whenANewListenPortIsTaken_rejectsTheWholeReload() throws {
        let a = try BackendProcess(name: "a")
        let holder = try BackendProcess(name: "holder")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        try daemon.rewriteConfig("""
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - {name: web, listen: 127.0.0.1:\(port), endpoints: [\(holder.address)]}
          - {name: clash, listen: 127.0.0.1:\(holder.port), endpoints: [\(a.address)]}
        """)
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload failed") })
        #expect(daemon.log.contains("address already in use"))
        // Still the old endpoint.
        #expect(try TestClient(port: port).readLine() == "a")
    }

    /// An edit in place (truncate and write the same inode, as `>` or an editor without
    /// backup files does) and an atomic rename over the file (as most tools do).
    @Test(arguments: ["edit in place", "rename over"])
    func fileWatcher_whenTheFileChanges_reloads(how: String) throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        let next = ConfigText.service(port: port, endpoints: [b.address], adminPort: admin)
        if how == "edit in place" {
            let handle = try #require(FileHandle(forWritingAtPath: daemon.configPath))
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(next.utf8))
            try handle.close()
        } else {
            try daemon.rewriteConfig(next)
        }
        #expect(Harness.waitUntil(timeout: 1.5) { daemon.log.contains("reload (file changed) complete") })
        #expect(try TestClient.answers(port, count: 2) == ["b", "b"])
    }

    @Test func fileWatcher_whenAConfigMapSwapsItsDataSymlink_reloads() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        // The layout kubelet makes: file -> ..data/file, ..data -> ..<timestamp>.
        let volume = Harness.temporaryDirectory()
        let fm = FileManager.default
        func version(_ name: String, _ endpoint: String) throws {
            let dir = volume.appendingPathComponent(name)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            try ConfigText.service(port: port, endpoints: [endpoint], adminPort: admin)
                .write(to: dir.appendingPathComponent("balancerd.yaml"), atomically: false, encoding: .utf8)
        }
        try version("..2026_11_27_01", a.address)
        try fm.createSymbolicLink(atPath: volume.appendingPathComponent("..data").path, withDestinationPath: "..2026_11_27_01")
        try fm.createSymbolicLink(atPath: volume.appendingPathComponent("balancerd.yaml").path, withDestinationPath: "..data/balancerd.yaml")
        let daemon = try DaemonProcess(configFile: volume.appendingPathComponent("balancerd.yaml").path)
        #expect(try TestClient.answers(port, count: 2) == ["a", "a"])
        // The swap: a new version, a temporary link to it, renamed over ..data.
        try version("..2026_11_27_02", b.address)
        try fm.createSymbolicLink(atPath: volume.appendingPathComponent("..data_tmp").path, withDestinationPath: "..2026_11_27_02")
        #expect(rename(volume.appendingPathComponent("..data_tmp").path, volume.appendingPathComponent("..data").path) == 0)
        try fm.removeItem(at: volume.appendingPathComponent("..2026_11_27_01"))
        #expect(Harness.waitUntil(timeout: 1.5) { daemon.log.contains("reload (file changed) complete") })
        #expect(try TestClient.answers(port, count: 2) == ["b", "b"])
    }

    @Test func fileWatcher_whenABurstOfWritesArrives_reloadsOnce() throws {
        let a = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address], adminPort: admin))
        let text = ConfigText.service(port: port, endpoints: [a.address], adminPort: admin)
        // Ten writes, 20 ms apart, the first five leaving the file half-written.
        for step in 0..<10 {
            try daemon.rewriteConfig(step < 5 ? String(text.prefix(text.count / 2)) : text)
            usleep(20_000)
        }
        #expect(Harness.waitUntil(timeout: 2) { daemon.log.contains("reload (file changed) complete") })
        usleep(800_000)
        #expect(daemon.logCount("reload (file changed) complete") == 1)
        #expect(!daemon.log.contains("reload failed"))
    }

    @Test func fiftyReloads_whileClientsConnectContinuously_dropNothing() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let other = Harness.freePort()
        let admin = Harness.freePort()
        let first = ConfigText.service(port: port, endpoints: [a.address, b.address], adminPort: admin)
        let second = """
        admin: {listen: 127.0.0.1:\(admin)}
        defaults: {connectTimeout: 1s, healthCheck: {interval: 500ms}}
        services:
          - {name: web, listen: 127.0.0.1:\(port), endpoints: [\(b.address)]}
          - {name: other, listen: 127.0.0.1:\(other), endpoints: [\(a.address)]}
        """
        let daemon = try DaemonProcess(config: first)
        // Connections opened before the reloads must all survive them, even those to the
        // endpoint that the second configuration removes.
        let longLived = try (0..<10).map { _ in try TestClient(port: port) }
        for client in longLived { _ = try client.readLine() }

        let counters = LoopCounters()
        let loop = Thread {
            while !counters.stopped {
                do {
                    let client = try TestClient(port: port, timeout: 2)
                    _ = try client.readLine()
                    counters.record(ok: true)
                } catch {
                    counters.record(ok: false)
                }
            }
        }
        loop.start()
        for index in 1...50 {
            try daemon.rewriteConfig(index % 2 == 1 ? second : first)
            daemon.send(SIGHUP)
            #expect(Harness.waitUntil(timeout: 3) { daemon.logCount("reload (SIGHUP) complete") >= index })
        }
        counters.stop()
        #expect(Harness.waitUntil(timeout: 5) { counters.finished })
        #expect(counters.failed == 0)
        #expect(counters.served > 50)
        for (index, client) in longLived.enumerated() {
            try client.send("still \(index)")
            client.shutdownWrite()
            let reply = String(decoding: try client.readToEnd(), as: UTF8.self)
            #expect(reply == "still \(index)eof \("still \(index)".utf8.count)\n")
        }
        #expect(!daemon.log.contains("reload failed"))
    }
}

/// Shared between the test and its client loop thread.
final class LoopCounters: @unchecked Sendable {
    private let lock = NSLock()
    private var _served = 0
    private var _failed = 0
    private var _stopped = false
    private var _finished = false

    var served: Int { lock.withLock { _served } }
    var failed: Int { lock.withLock { _failed } }
    var stopped: Bool {
        lock.withLock {
            if _stopped { _finished = true }
            return _stopped
        }
    }
    var finished: Bool { lock.withLock { _finished } }

    func record(ok: Bool) { lock.withLock { if ok { _served += 1 } else { _failed += 1 } } }
    func stop() { lock.withLock { _stopped = true } }
}
