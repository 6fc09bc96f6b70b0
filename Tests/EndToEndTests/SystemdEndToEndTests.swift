import Foundation
import Glibc
import Testing

/// Running under systemd: notify messages, watchdog, journald priorities, socket activation
/// and the unit files. systemd itself is not PID 1 here; its protocols are spoken for real.
@Suite struct SystemdEndToEndTests {
    @Test func notify_sendsReadyWhenServingThenReloadingReadyAndStoppingInOrder() throws {
        let backend = try BackendProcess(name: "a")
        let notify = try NotifySocket()
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin),
                                       environment: ["NOTIFY_SOCKET": notify.path], waitForStart: false)
        let ready = notify.waitFor(timeout: 10) { $0.hasPrefix("READY=1") }
        #expect(ready != nil)
        // Once READY=1 is sent, the listener and the admin port both answer.
        #expect(try TestClient(port: port).readLine() == "a")
        #expect(try HTTPClient.get(port: admin, path: "/healthz").body == "ok")
        #expect(ready?.contains("STATUS=1 services, 1/1 endpoints up") == true)

        daemon.send(SIGHUP)
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("RELOADING=1") }?.contains("MONOTONIC_USEC=") == true)
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("READY=1") && notify.kinds.contains("RELOADING=1") } != nil)
        daemon.send(SIGTERM)
        #expect(notify.waitFor(timeout: 5) { $0.hasPrefix("STOPPING=1") } != nil)
        #expect(daemon.waitForExit(timeout: 5) == 0)
        #expect(notify.kinds == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"])
    }

    @Test func watchdog_whenWatchdogUsecIsSet_pingsAtHalfThePeriod() throws {
        let backend = try BackendProcess(name: "a")
        let notify = try NotifySocket()
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address]),
                                       environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
        var pings = 0
        _ = notify.waitFor(timeout: 3) { message in
            if message.hasPrefix("WATCHDOG=1") { pings += 1 }
            return pings >= 5
        }
        #expect(pings >= 5)
        #expect(daemon.log.contains("watchdog: pinging systemd every 100ms"))
    }

    @Test func journald_whenJournalStreamIsSet_prefixesEachLineWithItsPriority() throws {
        let backend = try BackendProcess(name: "a")
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address]),
                                       environment: ["JOURNAL_STREAM": "8:12345"])
        let lines = daemon.log.split(separator: "\n")
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { $0.hasPrefix("<") && $0.dropFirst(2).hasPrefix(">") })
        #expect(lines.contains { $0.hasPrefix("<5>balancerd 0.1.0 started") })
        #expect(lines.contains { $0.hasPrefix("<6>file descriptor limit: ") })
    }

    @Test func socketActivation_usesThePassedListeningSocket() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let config = ConfigText.service(port: port, endpoints: [backend.address])
        // systemd-socket-activate holds the socket and starts the daemon on the first
        // connection, passing it as LISTEN_FDS: that first client must be served.
        let daemon = try DaemonProcess(
            config: config,
            launcher: ["/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:\(port)", "--fdname=web", "-E", "LANG=C.UTF-8"],
            waitForStart: false)
        #expect(Harness.waitUntil(timeout: 5) { (try? TestClient(port: port, timeout: 1)) != nil || !daemon.isRunning })
        let client = try TestClient(port: port, timeout: 10)
        #expect(try client.readLine() == "a")
        #expect(Harness.waitUntil(timeout: 5) { daemon.log.contains("listener 127.0.0.1:\(port): using the socket passed by systemd (fd 3)") })
        #expect(try TestClient(port: port).readLine() == "a")
    }

    @Test func unitFiles_passSystemdAnalyzeVerify() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = Harness.temporaryDirectory()
        // The unit as installed, pointing at the binary just built.
        let unit = try String(contentsOf: root.appendingPathComponent("config/balancerd.service"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/balancerd", with: Harness.balancerd)
        try unit.write(to: directory.appendingPathComponent("balancerd.service"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: root.appendingPathComponent("config/balancerd.socket"),
                                         to: directory.appendingPathComponent("balancerd.socket"))
        let verify = Process()
        verify.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        verify.arguments = ["verify", directory.appendingPathComponent("balancerd.service").path,
                            directory.appendingPathComponent("balancerd.socket").path]
        let output = Pipe()
        verify.standardError = output
        verify.standardOutput = output
        try verify.run()
        let finished = Harness.waitUntil(timeout: 60) { !verify.isRunning }
        if !finished { verify.terminate() }
        #expect(finished)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        verify.waitUntilExit()
        #expect(verify.terminationStatus == 0)
        // Unknown or misspelt keys are only warnings for systemd: any output is a finding.
        #expect(text.isEmpty, "systemd-analyze verify said: \(text)")
        for key in ["Type=notify", "ExecStartPre=", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec=",
                    "LimitNOFILE=", "DynamicUser=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service"] {
            #expect(unit.contains(key), "balancerd.service lacks \(key)")
        }
    }

    @Test func install_honoursDestdirAndPrefixAndKeepsAnExistingConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let destdir = Harness.temporaryDirectory()
        let existing = destdir.appendingPathComponent("etc/balancerd/balancerd.yaml")
        try FileManager.default.createDirectory(at: existing.deletingLastPathComponent(), withIntermediateDirectories: true)
        try "# mine\n".write(to: existing, atomically: true, encoding: .utf8)
        let install = Process()
        install.executableURL = URL(fileURLWithPath: root.appendingPathComponent("scripts/install.sh").path)
        // The binary under test: building another one here would wait on `swift test`'s lock.
        install.environment = ProcessInfo.processInfo.environment.merging(
            ["DESTDIR": destdir.path, "PREFIX": "/opt/lb", "BALANCERD_BIN": Harness.balancerd]) { $1 }
        install.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try install.run()
        #expect(Harness.waitUntil(timeout: 30) { !install.isRunning })
        #expect(install.terminationStatus == 0)
        #expect(FileManager.default.isExecutableFile(atPath: destdir.appendingPathComponent("opt/lb/bin/balancerd").path))
        #expect(FileManager.default.isExecutableFile(atPath: destdir.appendingPathComponent("opt/lb/bin/balancerctl").path))
        let unit = try String(contentsOf: destdir.appendingPathComponent("etc/systemd/system/balancerd.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/opt/lb/bin/balancerd --config /etc/balancerd/balancerd.yaml"))
        #expect(FileManager.default.fileExists(atPath: destdir.appendingPathComponent("etc/systemd/system/balancerd.socket").path))
        #expect(try String(contentsOf: existing, encoding: .utf8) == "# mine\n")
    }
}
