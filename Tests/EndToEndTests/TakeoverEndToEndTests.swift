import Foundation
import Glibc
import Synchronization
import Testing

/// Upgrade without dropping: a new balancerd (`--takeover`, or the one SIGUSR2 starts) takes
/// over the running one's listeners and established connections, with the real binary.
@Suite struct TakeoverEndToEndTests {
    /// The takeover socket of a daemon whose admin port is 127.0.0.1:`admin`.
    static func socketPath(admin: UInt16) -> String {
        let directory = ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init) ?? "/tmp"
        return "\(directory)/balancerd-takeover-127.0.0.1-\(admin).sock"
    }

    static let peerScript = Harness.repositoryRoot.appendingPathComponent("Tests/EndToEndTests/Support/takeover-peer.py").path

    /// Starts `balancerd --takeover` on the old one's configuration and waits for the old
    /// one to exit 0.
    private func takeOver(from old: DaemonProcess) throws -> DaemonProcess {
        let new = try DaemonProcess(configFile: old.configPath, arguments: ["--takeover"])
        #expect(old.waitForExit(timeout: 15) == 0, "the old daemon did not exit 0; its log:\n\(old.log)")
        #expect(new.log.contains("takeover: took over from pid \(old.pid)"), "the new daemon's log:\n\(new.log)")
        return new
    }

    private func stats(_ admin: UInt16) throws -> [String: Any] {
        let response = try HTTPClient.get(port: admin, path: "/stats")
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw HarnessError("/stats is not an object: \(response.body)")
        }
        return object
    }

    private func service(_ stats: [String: Any]) -> [String: Any] {
        ((stats["services"] as? [[String: Any]]) ?? []).first ?? [:]
    }

    private func endpoints(_ stats: [String: Any]) -> [[String: Any]] {
        (service(stats)["endpoints"] as? [[String: Any]]) ?? []
    }

    @Test func takeover_with50OpenConnections_keepsEveryByte() throws {
        let backend = try BackendProcess(name: "a", mode: "counting")
        let port = Harness.freePort()
        // No health checks: the backend's count of accepts is the clients' connections.
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["healthCheck: off"]))
        let clients = try (0..<50).map { _ in try TestClient(port: port, timeout: 10) }
        var greetings = Set<String>()
        for (index, client) in clients.enumerated() {
            greetings.insert(try client.readLine())
            try client.send("before \(index)\n")
            #expect(try client.readLine() == "before \(index)")
        }
        #expect(greetings == Set((1...50).map { "a \($0)" }))
        // Bytes in flight as the takeover happens: sent, not yet read back.
        for (index, client) in clients.enumerated() { try client.send("during \(index)\n") }
        let new = try takeOver(from: old)
        #expect(new.log.contains("50 connection(s)"))
        for (index, client) in clients.enumerated() {
            #expect(try client.readLine() == "during \(index)")
            try client.send("after \(index)\n")
            #expect(try client.readLine() == "after \(index)")
        }
        // The endpoint saw no new connection for any of the fifty: the next one is its 51st.
        #expect(try TestClient(port: port).readLine() == "a 51")
        for (index, client) in clients.enumerated() where index % 2 == 0 {
            client.shutdownWrite()
            let sent = "before \(index)\nduring \(index)\nafter \(index)\n".utf8.count
            #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "eof \(sent)\n")
        }
    }

    @Test func takeover_duringA32MiBTransferToASlowReader_deliversTheSameSha256() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]))
        let size = 32 * 1024 * 1024
        var generator = SystemRandomNumberGenerator()
        var random = [UInt8](repeating: 0, count: size)
        for index in stride(from: 0, to: size, by: 8) {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes in
                for offset in 0..<8 { random[index + offset] = bytes[offset] }
            }
        }
        let payload = random
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sentFile = directory.appendingPathComponent("sent")
        try Data(payload).write(to: sentFile)
        let client = try TestClient(port: port, timeout: 30)
        #expect(try client.readLine() == "a")
        let writer = Thread {
            try? client.send(payload)
            client.shutdownWrite()
        }
        writer.start()
        var new: DaemonProcess?
        // A slow reader: the relay holds bytes (in pipes, buffers) all along.
        let received = try client.readToEnd(pausingMicroseconds: 2_000) { count in
            if new == nil && count > size / 4 { new = try takeOver(from: old) }
        }
        #expect(new != nil)
        let trailer = Array("eof \(size)\n".utf8)
        #expect(received.count == size + trailer.count)
        #expect(Array(received.suffix(trailer.count)) == trailer)
        let receivedFile = directory.appendingPathComponent("received")
        try Data(received.prefix(size)).write(to: receivedFile)
        let sums = try Harness.run("/usr/bin/sha256sum", [sentFile.path, receivedFile.path])
            .split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(sums.count == 2 && sums[0] == sums[1] && sums[0].count == 64, "sha256sum said: \(sums)")
    }

    @Test func takeover_underAContinuousClientLoop_seesNoRefusalAndNoReset() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]))
        let stop = Atomic<Bool>(false)
        let served = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let loops = (0..<4).map { worker in
            Thread {
                var round = 0
                while !stop.load(ordering: .relaxed) {
                    round += 1
                    do {
                        let client = try TestClient(port: port, timeout: 10)
                        guard try client.readLine() == "a" else { throw HarnessError("wrong greeting") }
                        try client.send("ping \(worker) \(round)\n")
                        guard try client.readLine() == "ping \(worker) \(round)" else { throw HarnessError("wrong echo") }
                        served.wrappingAdd(1, ordering: .relaxed)
                    } catch {
                        // One is enough to fail the test; the loop ends there.
                        failures.withLock { $0.append("worker \(worker), round \(round): \(error)") }
                        return
                    }
                }
            }
        }
        loops.forEach { $0.start() }
        #expect(Harness.waitUntil(timeout: 10) { served.load(ordering: .relaxed) >= 50 })
        let new = try takeOver(from: old)
        let after = served.load(ordering: .relaxed)
        #expect(Harness.waitUntil(timeout: 10) { served.load(ordering: .relaxed) >= after + 50 })
        stop.store(true, ordering: .relaxed)
        #expect(Harness.waitUntil(timeout: 15) { loops.allSatisfy(\.isFinished) })
        #expect(failures.withLock { $0 } == [])
        _ = new
    }

    @Test func takeover_ofAHalfClosedConnection_stillDeliversTheRestOfItsReply() throws {
        // The backend answers the client's FIN only 1.5 s later: the reply comes from the new process.
        let backend = try BackendProcess(name: "a", mode: "slow-eof")
        let port = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]))
        let client = try TestClient(port: port, timeout: 10)
        #expect(try client.readLine() == "a")
        try client.send("hello\n")
        #expect(try client.readLine() == "hello")
        client.shutdownWrite()
        let new = try takeOver(from: old)
        #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "eof 6\n")
        _ = new
    }

    @Test func takeover_carriesHealthAndCounters_soADownEndpointStaysDownAndStatsGoOn() throws {
        let backend = try BackendProcess(name: "a")
        let gone = Harness.freePort()  // nothing listens there: that endpoint goes down
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let config = ConfigText.service(port: port, endpoints: [backend.address, "127.0.0.1:\(gone)"],
                                        service: ["healthCheck: {interval: 300ms, timeout: 200ms, fall: 3, rise: 2}"], adminPort: admin)
        let old = try DaemonProcess(config: config)
        #expect(Harness.waitUntil(timeout: 10) { (try? endpoints(stats(admin)).last?["state"] as? String) == "down" })
        for _ in 0..<3 {
            let client = try TestClient(port: port)
            #expect(try client.readLine() == "a")
            try client.send("x")
            #expect(try client.readChunk() == Array("x".utf8))
        }
        let before = try stats(admin)
        let totalBefore = service(before)["totalConnections"] as? Int ?? -1
        let bytesBefore = service(before)["bytesIn"] as? Int ?? -1
        #expect(totalBefore == 3)
        let new = try takeOver(from: old)
        // At once, before any check of its own could have taken it down again.
        let after = try stats(admin)
        #expect(endpoints(after).last?["state"] as? String == "down")
        #expect(service(after)["totalConnections"] as? Int == totalBefore)
        #expect((service(after)["bytesIn"] as? Int ?? -1) >= bytesBefore)
        #expect((after["config"] as? [String: Any])?["generation"] as? Int == 1)
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(Harness.waitUntil(timeout: 5) { (try? service(stats(admin))["totalConnections"] as? Int) == totalBefore + 1 })
        #expect(!new.log.contains("127.0.0.1:\(gone) down"), "the endpoint went down again in the new process:\n\(new.log)")
    }

    @Test func takeover_whenTheNewProcessDiesMidHandover_theOldOneResumesEverything() throws {
        let backend = try BackendProcess(name: "a", mode: "counting")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["healthCheck: off"], adminPort: admin))
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a 1")
        try client.send("one\n")
        #expect(try client.readLine() == "one")
        // A peer that receives the listeners and the connection, then goes away without a word.
        let said = try Harness.run("/usr/bin/python3", [Self.peerScript, Self.socketPath(admin: admin), "vanish"])
        #expect(said.contains("listeners 3") && said.contains("connections 1") && said.contains("state"), "the peer said: \(said)")
        #expect(Harness.waitUntil(timeout: 5) { old.log.contains("failed: the new process went away; serving on with everything (resumed)") })
        try client.send("two\n")
        #expect(try client.readLine() == "two")
        #expect(try TestClient(port: port).readLine() == "a 2")
        #expect(old.isRunning)
    }

    @Test func takeover_whenTheNewProcessHangs_theOldOneTakesAllBackAfterTenSecondsAndKillsIt() throws {
        let backend = try BackendProcess(name: "a", mode: "counting")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["healthCheck: off"], adminPort: admin))
        let client = try TestClient(port: port, timeout: 20)
        #expect(try client.readLine() == "a 1")
        // A peer that receives everything and then never says it is ready.
        let peer = try Harness.spawn("/usr/bin/python3", [Self.peerScript, Self.socketPath(admin: admin), "hang"])
        defer { kill(peer, SIGKILL); var status: Int32 = 0; waitpid(peer, &status, 0) }
        #expect(Harness.waitUntil(timeout: 16) { old.log.contains("takeover by pid \(peer) failed") && old.log.contains("(resumed)") })
        // Killed by the old daemon, which serves on with the connection it had parked.
        var status: Int32 = 0
        #expect(Harness.waitUntil(timeout: 3) { waitpid(peer, &status, WNOHANG) == peer })
        try client.send("after\n")
        #expect(try client.readLine() == "after")
        #expect(try TestClient(port: port).readLine() == "a 2")
        #expect(old.isRunning)
    }

    @Test func takeover_withAProtocolVersionMismatch_isRefusedCleanly() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin))
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a")
        let said = try Harness.run("/usr/bin/python3", [Self.peerScript, Self.socketPath(admin: admin), "version", "99"])
        #expect(said.contains("refused: protocol version 99 is not spoken here (this daemon speaks version 1)"), "the peer said: \(said)")
        #expect(Harness.waitUntil(timeout: 5) { old.log.contains("failed: protocol version 99 is not spoken here") })
        try client.send("still\n")
        #expect(try client.readLine() == "still")
        #expect(try TestClient(port: port).readLine() == "a")
    }

    @Test func takeover_whenTheNewConfigurationDoesNotValidate_theOldOneServesOnAndLogsWhy() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let notify = try NotifySocket()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]),
                                    environment: ["NOTIFY_SOCKET": notify.path])
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a")
        // By hand: the new process reports the error and exits 1.
        let bad = old.directory.appendingPathComponent("bad.yaml").path
        try "services:\n  - name: web\n    listen: 127.0.0.1:70000\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let byHand = try DaemonProcess(configFile: bad, arguments: ["--takeover"], waitForStart: false)
        #expect(byHand.waitForExit(timeout: 10) == 1)
        #expect(byHand.log.contains("port 70000 is out of range"))
        // By SIGUSR2, with the daemon's own file made invalid: the old one logs why it goes on.
        try "services: [\n".write(toFile: old.configPath, atomically: true, encoding: .utf8)
        old.send(SIGUSR2)
        #expect(Harness.waitUntil(timeout: 15) { old.log.contains("exited with status 1 before taking over; serving on") }, "its log:\n\(old.log)")
        #expect(old.isRunning)
        try client.send("still\n")
        #expect(try client.readLine() == "still")
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(!notify.messages.contains { $0.hasPrefix("MAINPID=") })
    }

    @Test func takeover_withNoRunningDaemon_exitsOneWithAMessage() throws {
        let backend = try BackendProcess(name: "a")
        let new = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address]),
                                    arguments: ["--takeover"], waitForStart: false)
        #expect(new.waitForExit(timeout: 10) == 1)
        #expect(new.log.contains("balancerd: --takeover: no running balancerd to take over from: connect /"), "its log:\n\(new.log)")
    }

    @Test func sigusr2_startsTheSuccessor_whichSystemdLearnsAsMAINPIDBeforeItsReady() throws {
        let backend = try BackendProcess(name: "a", mode: "counting")
        let port = Harness.freePort()
        let notify = try NotifySocket()
        let old = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["healthCheck: off"]),
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        #expect(notify.waitFor(timeout: 10) { $0.hasPrefix("READY=1") } != nil)
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a 1")
        old.send(SIGUSR2)
        let announced = notify.waitFor(timeout: 15) { $0.hasPrefix("MAINPID=") }
        let successor = announced.flatMap { Int32($0.dropFirst("MAINPID=".count).prefix { $0.isNumber }) }
        defer { if let successor { kill(successor, SIGKILL) } }
        #expect(successor != nil && successor != old.pid)
        #expect(old.waitForExit(timeout: 15) == 0)
        // The new one says READY=1 after MAINPID=, then answers the watchdog itself.
        #expect(notify.waitFor(timeout: 10) { $0.hasPrefix("READY=1") && notify.kinds.filter { $0 == "READY=1" }.count == 2 } != nil)
        let kinds = notify.kinds.filter { $0 != "WATCHDOG=1" }
        #expect(kinds.starts(with: ["READY=1"]) && kinds.firstIndex(of: "READY=1") != kinds.lastIndex(of: "READY=1"))
        if let mainpid = kinds.firstIndex(where: { $0.hasPrefix("MAINPID=") }), let ready = kinds.lastIndex(of: "READY=1") {
            #expect(mainpid < ready)
        }
        let pingsBefore = notify.kinds.filter { $0 == "WATCHDOG=1" }.count
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("WATCHDOG=1") && notify.kinds.filter { $0 == "WATCHDOG=1" }.count >= pingsBefore + 3 } != nil)
        try client.send("across\n")
        #expect(try client.readLine() == "across")
        #expect(try TestClient(port: port).readLine() == "a 2")
        #expect(old.log.contains("takeover: pid \(successor ?? 0) took over"))
    }
}
