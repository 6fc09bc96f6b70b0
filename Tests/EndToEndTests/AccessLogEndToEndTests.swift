import Foundation
import Glibc
import Testing

/// The connection log against the real daemon: one line per connection with why it ended
/// (each `end` from a real scenario), its bytes, both formats, sampling, SIGUSR1 after a
/// rename, a full filesystem, reloads. Every wait is bounded.
@Suite struct AccessLogEndToEndTests {
    /// One JSON line, decoded strictly: exactly the contract's keys, each of its type.
    struct Line: Decodable {
        let time: String
        let durationMs: Int
        let client: String?
        let listen: String
        let service: String
        let endpoint: String?
        let attempts: Int
        let queueMs: Int
        let connectMs: Int?
        let bytesIn: Int
        let bytesOut: Int
        let end: String
        let worker: Int

        static let keys: Set<String> = ["time", "durationMs", "client", "listen", "service", "endpoint", "attempts", "queueMs",
                                        "connectMs", "bytesIn", "bytesOut", "end", "worker"]

        static func parse(_ text: Substring) throws -> Line {
            let data = Data(text.utf8)
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw HarnessError("not an object: \(text)") }
            guard Set(object.keys) == keys else { throw HarnessError("keys \(object.keys.sorted()) in \(text)") }
            return try JSONDecoder().decode(Line.self, from: data)
        }
    }

    /// A daemon whose access log (`accessLog` is the YAML mapping) sits in its own folder.
    struct Setup {
        let daemon: DaemonProcess
        let port: UInt16
        let admin: UInt16
        var logPath: String { daemon.directory.appendingPathComponent("access.log").path }
    }

    static func start(endpoints: [String], service extra: [String] = [], top: [String] = [],
                      accessLog: String = "{path: access.log}") throws -> Setup {
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: endpoints, service: extra,
                                                                  top: top + ["accessLog: \(accessLog)"], adminPort: admin))
        return Setup(daemon: daemon, port: port, admin: admin)
    }

    static func lines(_ path: String) throws -> [Line] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map(Line.parse)
    }

    /// The lines once there are at least `count` (at most 5 s).
    static func waitForLines(_ path: String, count: Int) throws -> [Line] {
        var found: [Line] = []
        Harness.waitUntil(timeout: 5) { found = (try? lines(path)) ?? []; return found.count >= count }
        if found.count < count { throw HarnessError("\(found.count) access log line(s), expected \(count): \((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")") }
        return found
    }

    /// The one line whose `end` is `end`.
    static func line(_ path: String, end: String) throws -> Line {
        var found: Line?
        Harness.waitUntil(timeout: 5) { found = ((try? lines(path)) ?? []).first { $0.end == end }; return found != nil }
        guard let found else { throw HarnessError("no '\(end)' line in: \((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")") }
        return found
    }

    static func accessLogStats(_ admin: UInt16) -> (written: Int, dropped: Int) {
        let figures = (try? HTTPClient.stats(adminPort: admin))?["accessLog"] as? [String: Any]
        return (figures?["written"] as? Int ?? -1, figures?["dropped"] as? Int ?? -1)
    }

    /// A connection the echo backend "a" has greeted.
    static func greeted(port: UInt16) throws -> TestClient {
        let client = try TestClient(port: port)
        let greeting = try client.readLine()
        if greeting != "a" { throw HarnessError("greeted by '\(greeting)'") }
        return client
    }

    /// Sends `text`, half-closes, reads the echo to its end.
    static func echo(_ text: String, port: UInt16) throws -> (client: TestClient, received: [UInt8]) {
        let client = try TestClient(port: port)
        try client.send(text)
        client.shutdownWrite()
        return (client, try client.readToEnd())
    }

    // MARK: Each end

    @Test func clientThatClosesFirst_isOneLine_withEveryFieldTypedAndTheBytesMoved() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address])
        let (client, received) = try Self.echo("hello, log", port: setup.port)
        #expect(received == Array("a\nhello, logeof 10\n".utf8))
        let line = try #require(try Self.waitForLines(setup.logPath, count: 1).first)
        #expect(line.end == "client-closed")
        #expect(line.client == "127.0.0.1:\(client.localPort)")
        #expect(line.listen == "127.0.0.1:\(setup.port)")
        #expect(line.service == "web")
        #expect(line.endpoint == backend.address)
        #expect(line.attempts == 1)
        #expect(line.queueMs == 0)
        #expect(line.connectMs != nil)
        #expect(line.bytesIn == 10)
        #expect(line.bytesOut == received.count)
        #expect(line.worker >= 0)
        #expect(line.durationMs >= 0)
        #expect(line.time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        #expect(Self.accessLogStats(setup.admin) == (1, 0))
    }

    @Test func endpointThatClosesFirst_isEndpointClosed() throws {
        let backend = try BackendProcess(name: "c", mode: "close")
        let setup = try Self.start(endpoints: [backend.address])
        let client = try TestClient(port: setup.port)
        #expect(try client.readToEnd().isEmpty)
        client.shutdownWrite()
        let line = try Self.line(setup.logPath, end: "endpoint-closed")
        #expect(line.bytesIn == 0 && line.bytesOut == 0)
        #expect(line.endpoint == backend.address)
    }

    @Test func clientThatResets_isClientReset_withTheBytesSoFar() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address])
        do {
            let client = try Self.greeted(port: setup.port)
            try client.send("abc")
            #expect(try client.readChunk() == Array("abc".utf8))
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }  // closed here: a reset
        let line = try Self.line(setup.logPath, end: "client-reset")
        #expect(line.bytesIn == 3)
        #expect(line.bytesOut == 5)
    }

    @Test func endpointThatResets_isEndpointReset() throws {
        // resetafter: it greets and reads 1,000 bytes first, so the reset comes once the
        // connection is relaying. (One that resets as it accepts may be seen by the connect
        // itself, as ECONNRESET: then the end is, rightly, connect-failed.)
        let backend = try BackendProcess(name: "r", mode: "resetafter")
        let setup = try Self.start(endpoints: [backend.address], service: ["healthCheck: off"])
        let client = try TestClient(port: setup.port)
        #expect(try client.readLine() == "r")
        try? client.send([UInt8](repeating: 1, count: 1000))
        #expect(client.waitForClose() != nil)
        #expect(try Self.line(setup.logPath, end: "endpoint-reset").endpoint == backend.address)
    }

    @Test func endpointThatNeverAnswers_isIdleTimeout() throws {
        let backend = try BackendProcess(name: "s", mode: "silent")
        let setup = try Self.start(endpoints: [backend.address], service: ["idleTimeout: 300ms"])
        let client = try TestClient(port: setup.port)
        try client.send("anyone?")
        #expect(client.waitForClose() == "eof")
        let line = try Self.line(setup.logPath, end: "idle-timeout")
        #expect(line.bytesIn == 7 && line.bytesOut == 0)
        #expect(line.durationMs >= 300)
    }

    @Test func everyConnectRefused_isConnectFailed_withTheLastEndpointTriedAndNoConnectTime() throws {
        let first = "127.0.0.1:\(Harness.freePort())"
        let second = "127.0.0.1:\(Harness.freePort())"
        let setup = try Self.start(endpoints: [first, second], service: ["healthCheck: off", "retries: 1"])
        let client = try TestClient(port: setup.port)
        #expect(client.waitForClose() != nil)
        let line = try Self.line(setup.logPath, end: "connect-failed")
        #expect(line.attempts == 2)
        #expect(line.endpoint == second)
        #expect(line.connectMs == nil)
        // The daemon's own lines about this connection name its client.
        let name = "client 127.0.0.1:\(client.localPort)"
        #expect(Harness.waitUntil(timeout: 3) { setup.daemon.log.contains("\(name): connection closed: every connect failed") })
        #expect(setup.daemon.log.contains("\(name): connect to \(first) failed"))
    }

    @Test func everyEndpointInMaintenance_isNoEndpoint_withNoAttempt() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address])
        let answer = try HTTPClient.command(adminPort: setup.admin, address: backend.address, verb: "state", body: #"{"state":"maintenance"}"#)
        #expect(answer.status == 200)
        #expect(try TestClient(port: setup.port).waitForClose() != nil)
        let line = try Self.line(setup.logPath, end: "no-endpoint")
        #expect(line.attempts == 0)
        #expect(line.endpoint == nil)
        #expect(line.connectMs == nil)
    }

    @Test func endpointAtItsLimitWithoutAQueue_isOverLimit() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: ["{address: \(backend.address), maxConnections: 1}"])
        let holder = try Self.greeted(port: setup.port)
        #expect(try TestClient(port: setup.port).waitForClose() != nil)
        let line = try Self.line(setup.logPath, end: "over-limit")
        #expect(line.attempts == 0 && line.endpoint == nil)
        withExtendedLifetime(holder) {}
    }

    @Test func fullQueue_isQueueFull_andAWaitThatRunsOut_isQueueTimeout_withItsQueueTime() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: ["{address: \(backend.address), maxConnections: 1}"],
                                   service: ["queue: {size: 1, timeout: 300ms}"])
        let holder = try Self.greeted(port: setup.port)
        let waiting = try TestClient(port: setup.port)
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: setup.admin)["queued"] as? Int == 1 })
        #expect(try TestClient(port: setup.port).waitForClose() != nil)
        #expect(waiting.waitForClose() != nil)
        #expect(try Self.line(setup.logPath, end: "queue-full").queueMs == 0)
        let timedOut = try Self.line(setup.logPath, end: "queue-timeout")
        #expect(timedOut.queueMs >= 300)
        #expect(timedOut.attempts == 0)
        withExtendedLifetime(holder) {}
    }

    @Test func connectionPastLimitsMaxConnections_isGlobalLimit() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address], top: ["limits: {maxConnections: 1}"])
        let holder = try Self.greeted(port: setup.port)
        let refused = try TestClient(port: setup.port)
        #expect(refused.waitForClose() != nil)
        let line = try Self.line(setup.logPath, end: "global-limit")
        #expect(line.client == "127.0.0.1:\(refused.localPort)")
        #expect(line.attempts == 0 && line.endpoint == nil && line.bytesIn == 0)
        withExtendedLifetime(holder) {}
    }

    @Test func connectionOpenAtTheDrainDeadline_isDrainDeadline_writtenBeforeExit() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address], service: ["drainTimeout: 300ms"])
        let client = try Self.greeted(port: setup.port)
        setup.daemon.send(SIGTERM)
        #expect(setup.daemon.waitForExit(timeout: 5) == 0)
        let lines = try Self.lines(setup.logPath)
        #expect(lines.map(\.end) == ["drain-deadline"])
        #expect(lines.first?.bytesOut == 2)
    }

    @Test func connectionClosedFromTheAdminPort_isAdminClose() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address])
        let client = try Self.greeted(port: setup.port)
        #expect(try HTTPClient.command(adminPort: setup.admin, address: backend.address, verb: "close", body: "").status == 200)
        #expect(client.waitForClose() != nil)
        #expect(try Self.line(setup.logPath, end: "admin-close").endpoint == backend.address)
    }

    // MARK: Formats, sampling, files

    @Test func textFormatOnStderr_isTheSameFieldsSpaceSeparated() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address], accessLog: "{path: stderr, format: text}")
        let (client, received) = try Self.echo("12345", port: setup.port)
        let pattern = " 127.0.0.1:\(client.localPort) 127.0.0.1:\(setup.port) web \(backend.address) 1 0 "
        var line = ""
        #expect(Harness.waitUntil(timeout: 5) {
            line = setup.daemon.log.split(separator: "\n").first { $0.contains(pattern) }.map(String.init) ?? ""
            return !line.isEmpty
        })
        let fields = line.split(separator: " ")
        #expect(fields.count == 13)
        guard fields.count == 13 else { return }
        #expect(fields[0].wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        #expect(Int(fields[8]) != nil)  // connectMs
        #expect(fields[9] == "5" && fields[10] == "\(received.count)")
        #expect(fields[11] == "client-closed")
    }

    @Test func sampleZero_logsNoSuccess_butEveryFailure() throws {
        let backend = try BackendProcess(name: "a")
        let refused = "127.0.0.1:\(Harness.freePort())"
        // Round-robin from the first: the backend, then the refused port (retries: 0).
        let setup = try Self.start(endpoints: [backend.address, refused], service: ["healthCheck: off", "retries: 0"],
                                   accessLog: "{path: access.log, sample: 0}")
        var served = 0
        for _ in 0..<6 {
            let client = try TestClient(port: setup.port)
            try? client.send("x")
            client.shutdownWrite()
            if let bytes = try? client.readToEnd(), !bytes.isEmpty { served += 1 }
        }
        #expect(served == 3)
        _ = try Self.waitForLines(setup.logPath, count: 3)
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: setup.admin)["activeConnections"] as? Int == 0 })
        usleep(300_000)  // two writer periods: a success would be written by now
        let all = try Self.lines(setup.logPath)
        #expect(all.map(\.end) == ["connect-failed", "connect-failed", "connect-failed"])
        #expect(HTTPClient.firstService(adminPort: setup.admin)["failedConnections"] as? Int == 3)
    }

    @Test func sigusr1_afterARename_reopensTheFile_andTheNextLinesGoThere() throws {
        let backend = try BackendProcess(name: "a")
        let setup = try Self.start(endpoints: [backend.address])
        _ = try Self.echo("one", port: setup.port)
        _ = try Self.waitForLines(setup.logPath, count: 1)
        let rotated = setup.logPath + ".1"
        #expect(rename(setup.logPath, rotated) == 0)
        setup.daemon.send(SIGUSR1)
        #expect(Harness.waitUntil(timeout: 5) { FileManager.default.fileExists(atPath: setup.logPath) })
        _ = try Self.echo("two!", port: setup.port)
        let fresh = try Self.waitForLines(setup.logPath, count: 1)
        #expect(fresh.map(\.bytesIn) == [4])
        #expect(try Self.lines(rotated).map(\.bytesIn) == [3])
        #expect(setup.daemon.log.contains("reopened (SIGUSR1)"))
    }

    @Test func reload_turnsTheLogOn_movesIt_andTurnsItOff() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        func config(_ accessLog: String?) -> String {
            ConfigText.service(port: port, endpoints: [backend.address], top: accessLog.map { ["accessLog: \($0)"] } ?? [], adminPort: admin)
        }
        let daemon = try DaemonProcess(config: config(nil))
        let first = daemon.directory.appendingPathComponent("first.log").path
        let second = daemon.directory.appendingPathComponent("second.log").path
        func reload(_ accessLog: String?, generation: Int) throws {
            try daemon.rewriteConfig(config(accessLog))
            daemon.send(SIGHUP)
            #expect(Harness.waitUntil(timeout: 5) {
                ((try? HTTPClient.stats(adminPort: admin))?["config"] as? [String: Any])?["generation"] as? Int == generation
            })
        }
        _ = try Self.echo("off", port: port)
        try reload("{path: first.log}", generation: 2)
        _ = try Self.echo("on", port: port)
        #expect(try Self.waitForLines(first, count: 1).map(\.bytesIn) == [2])
        try reload("{path: second.log, format: json}", generation: 3)
        _ = try Self.echo("moved", port: port)
        #expect(try Self.waitForLines(second, count: 1).map(\.bytesIn) == [5])
        try reload(nil, generation: 4)
        _ = try Self.echo("off again", port: port)
        usleep(300_000)  // two writer periods
        #expect(try Self.lines(first).count == 1)
        #expect(try Self.lines(second).count == 1)
        #expect(Self.accessLogStats(admin) == (2, 0))
    }

    @Test func reload_toAPathThatCannotBeOpened_isRejected_andTheLogGoesOn() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], top: ["accessLog: {path: access.log}"], adminPort: admin))
        try daemon.rewriteConfig(ConfigText.service(port: port, endpoints: [backend.address], top: ["accessLog: {path: /nonexistent/dir/a.log}"], adminPort: admin))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 5) { daemon.log.contains("reload rejected: accessLog.path") })
        _ = try Self.echo("still", port: port)
        #expect(try Self.waitForLines(daemon.directory.appendingPathComponent("access.log").path, count: 1).map(\.bytesIn) == [5])
    }

    @Test func start_withAPathThatCannotBeOpened_exitsOne_namingThePath() throws {
        let backend = try BackendProcess(name: "a")
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address],
                                                                  top: ["accessLog: {path: /nonexistent/dir/access.log}"]),
                                       waitForStart: false)
        #expect(daemon.waitForExit(timeout: 10) == 1)
        #expect(daemon.log.contains("/nonexistent/dir/access.log"))
        #expect(daemon.log.contains("no such file or directory"))
    }

    /// A log file on a 64 KiB tmpfs: once it is full, lines are dropped and counted, and
    /// every connection is still served whole.
    @Test func fullFilesystem_dropsLinesAndCountsThem_whileEveryConnectionIsServed() throws {
        let mountPoint = Harness.temporaryDirectory().path
        func run(_ arguments: [String]) -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            process.arguments = ["10"] + arguments
            guard (try? process.run()) != nil else { return -1 }
            process.waitUntilExit()
            return process.terminationStatus
        }
        try #require(run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mountPoint]) == 0)
        defer {
            _ = run(["umount", "-l", mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let backend = try BackendProcess(name: "a")
        let path = mountPoint + "/access.log"
        let setup = try Self.start(endpoints: [backend.address], accessLog: "{path: \(path)}")
        let count = 400  // about 280 bytes each: 110 KB, well past 64 KiB
        for index in 0..<count {
            let text = "connection \(index)"
            let (_, received) = try Self.echo(text, port: setup.port)
            #expect(received == Array("a\n\(text)eof \(text.utf8.count)\n".utf8))
        }
        #expect(Harness.waitUntil(timeout: 5) { let s = Self.accessLogStats(setup.admin); return s.written + s.dropped == count })
        let (written, dropped) = Self.accessLogStats(setup.admin)
        #expect(written > 0 && dropped > 0)
        // Whole lines only: a line cut short by the full disk is taken back.
        #expect(try Self.lines(path).count == written)
        #expect(setup.daemon.log.contains("cannot write: no space left on device"))
        let metrics = try HTTPClient.get(port: setup.admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_access_log_lines_total{result=\"dropped\"} \(dropped)"))
        #expect(setup.daemon.isRunning)
    }
}
