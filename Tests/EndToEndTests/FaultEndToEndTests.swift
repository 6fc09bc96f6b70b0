import Foundation
import Glibc
import Testing

/// Faults and hostile peers: the daemon stays up, bounded, and every other connection is
/// untouched. Every wait is bounded. Serialized: the 10,000-connection test and the soak
/// must not compete for loopback ports and CPU with each other.
@Suite(.serialized) struct FaultEndToEndTests {
    /// Resident memory of a process, in KiB.
    static func rssKiB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    /// Open file descriptors of a process.
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    @Test(arguments: ["splice", "copy"])
    func clientThatNeverReads_whileEndpointFloods_backpressureBoundsMemory(relay: String) throws {
        let backend = try BackendProcess(name: "a", mode: "flood")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin),
                                       environment: ["BALANCERD_RELAY": relay])
        let before = Self.rssKiB(daemon.pid)
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a")
        // The endpoint writes as fast as it can; the client reads nothing more.
        usleep(1_000_000)
        let first = HTTPClient.firstService(adminPort: admin)["bytesOut"] as? Int ?? -1
        usleep(1_000_000)
        let second = HTTPClient.firstService(adminPort: admin)["bytesOut"] as? Int ?? -2
        // Both socket buffers filled, then the daemon stopped reading the endpoint.
        #expect(first == second, "bytes kept flowing to a client that reads nothing: \(first) then \(second)")
        #expect(first < 64 * 1024 * 1024)
        let grown = Self.rssKiB(daemon.pid) - before
        #expect(grown < 8 * 1024, "RSS grew by \(grown) KiB")
        withExtendedLifetime(client) {}
    }

    @Test func endpointThatNeverReads_whileClientSendsFast_backpressureBoundsMemory() throws {
        let backend = try BackendProcess(name: "a", mode: "noread")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin))
        let before = Self.rssKiB(daemon.pid)
        let client = try TestClient(port: port)
        // Send until the client's own socket blocks (or 256 MiB, or 5 s).
        _ = fcntl(client.fd, F_SETFL, fcntl(client.fd, F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 0x55, count: 65536)
        var sent = 0
        let deadline = Date().addingTimeInterval(5)
        var blockedSince: Date?
        while sent < 256 * 1024 * 1024 && Date() < deadline {
            let n = chunk.withUnsafeBytes { send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                blockedSince = nil
            } else {
                if blockedSince == nil { blockedSince = Date() }
                if Date().timeIntervalSince(blockedSince!) > 0.5 { break }
                usleep(10_000)
            }
        }
        #expect(sent < 64 * 1024 * 1024, "the daemon took \(sent) bytes for an endpoint that reads nothing")
        let grown = Self.rssKiB(daemon.pid) - before
        #expect(grown < 8 * 1024, "RSS grew by \(grown) KiB")
        #expect(daemon.isRunning)
    }

    @Test func endpointResettingMidTransfer_closesThatClientOnly() throws {
        let resetter = try BackendProcess(name: "r", mode: "resetafter")
        let echo = try BackendProcess(name: "e")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [resetter.address, echo.address], service: ["healthCheck: off"]))
        let victim = try TestClient(port: port)
        #expect(try victim.readLine() == "r")
        let bystander = try TestClient(port: port)
        #expect(try bystander.readLine() == "e")
        // The resetter reads 1000 bytes, then resets: the victim is closed.
        try? victim.send([UInt8](repeating: 1, count: 4000))
        #expect(victim.waitForClose() != nil)
        // The other connection goes on as if nothing happened.
        try bystander.send("fine")
        bystander.shutdownWrite()
        #expect(String(decoding: try bystander.readToEnd(), as: UTF8.self) == "fineeof 4\n")
        #expect(daemon.isRunning)
    }

    @Test func endpointThatAcceptsButNeverAnswers_isClosedByIdleTimeout() throws {
        let silent = try BackendProcess(name: "s", mode: "silent")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [silent.address], service: ["idleTimeout: 300ms"]))
        let client = try TestClient(port: port, timeout: 5)
        try client.send("anyone?")
        #expect(client.waitForClose() == "eof")
        #expect(daemon.isRunning)
    }

    @Test func endpointThatClosesAtOnce_givesTheClientAnEOF() throws {
        let closer = try BackendProcess(name: "c", mode: "close")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [closer.address]))
        for _ in 0..<20 {
            let client = try TestClient(port: port, timeout: 5)
            #expect(try client.readToEnd().isEmpty)
        }
        #expect(daemon.isRunning)
    }

    @Test func limits_maxConnections_refusesPastItAtOnceAndRecovers() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [backend.address], top: ["limits:", "  maxConnections: 5"], adminPort: admin))
        var held = try (0..<5).map { _ in try TestClient(port: port) }
        for client in held { #expect(try client.readLine() == "a") }
        let refused = try TestClient(port: port, timeout: 2)
        #expect(refused.waitForClose() != nil)
        #expect(HTTPClient.firstService(adminPort: admin)["failedConnections"] as? Int == 1)
        held.removeFirst()
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == 4 })
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(daemon.isRunning)
        withExtendedLifetime(held) {}
    }

    @Test func tenThousandConcurrentConnections_areAllServedWithBoundedMemory() throws {
        // Two endpoints: each thread-per-connection backend then holds half, well below
        // ThreadSanitizer's cap of about 8,000 threads when the suite runs under it.
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), adminPort: admin))
        let before = Self.rssKiB(daemon.pid)
        // Each proxied connection costs the daemon two descriptors. Where the hard limit
        // (which an unprivileged sandbox cannot raise) is below 20,000 plus a reserve, take
        // as many as it allows.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let count = min(10_000, (Int(limit.rlim_max) - 64) / 2)
        var clients: [TestClient] = []
        clients.reserveCapacity(count)
        // Opened in batches of 500, each greeted before the next (the backend is a plain
        // thread-per-connection server), within one overall deadline; all stay open.
        let deadline = Date().addingTimeInterval(120)
        var greeted = 0
        while clients.count < count && Date() < deadline {
            let batch = try (0..<min(500, count - clients.count)).map { _ in try TestClient(port: port, timeout: 5) }
            for client in batch where Date() < deadline && ["a", "b"].contains(try? client.readLine()) { greeted += 1 }
            clients += batch
        }
        #expect(greeted == count)
        #expect(HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == count)
        let perConnection = (Self.rssKiB(daemon.pid) - before) * 1024 / count
        // Two sockets' worth of bookkeeping, no buffers: a few KiB at most.
        if ProcessInfo.processInfo.environment["BALANCERD_SANITIZER"] == nil {
            #expect(perConnection < 8 * 1024, "\(perConnection) bytes of RSS per idle connection")
        }
        clients.removeAll()
        #expect(Harness.waitUntil(timeout: 20) { HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == 0 })
    }

    @Test func soak_200000ShortConnections_leaveNoDescriptorOrMemoryBehind() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin))
        // Warm up (allocator pools, lazily made buffers), then take the baseline.
        for _ in 0..<2000 { _ = try TestClient(port: port).readLine() }
        #expect(Harness.waitUntil(timeout: 10) { HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == 0 })
        let descriptors = Self.openDescriptors(daemon.pid)
        let memory = Self.rssKiB(daemon.pid)

        let total = 200_000
        let threads = 4
        let counters = LoopCounters()
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread.detachNewThread {
                // Each thread connects from its own loopback address: 200,000 connections
                // from one address would run out of ephemeral ports in TIME_WAIT.
                let source = "127.0.\(thread + 1).1"
                for _ in 0..<(total / threads) {
                    if let client = try? TestClient(port: port, timeout: 5, source: source), (try? client.readLine()) == "a" {
                        counters.record(ok: true)
                    } else {
                        counters.record(ok: false)
                    }
                }
                done.leave()
            }
        }
        #expect(done.wait(timeout: .now() + 240) == .success)
        #expect(counters.failed == 0)
        #expect(counters.served == total)
        #expect(Harness.waitUntil(timeout: 20) { HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == 0 })
        #expect(Self.openDescriptors(daemon.pid) == descriptors)
        // Under a sanitizer freed memory sits in its quarantine: RSS says nothing there.
        if ProcessInfo.processInfo.environment["BALANCERD_SANITIZER"] == nil {
            let grown = Self.rssKiB(daemon.pid) - memory
            #expect(grown < 4 * 1024, "RSS grew by \(grown) KiB over \(total) connections")
        }
    }
}
