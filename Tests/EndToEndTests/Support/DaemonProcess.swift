import Foundation
import Glibc

/// The real `balancerd` binary, run with a configuration written for the test.
final class DaemonProcess {
    let directory: URL
    let configPath: String
    let logPath: String
    private let process: Process

    /// Writes `config` to a file, starts the daemon on it and waits (at most 10 s) until it
    /// logs that it started. `environment` adds to the test's own environment.
    /// `launcher` runs before the daemon's own command line (such as `prlimit ... --`).
    /// `configFile`: use that file, already in place, instead of writing `config`.
    init(config: String = "", configFile: String? = nil, arguments: [String] = [], environment: [String: String] = [:], launcher: [String] = [], waitForStart: Bool = true) throws {
        directory = Harness.temporaryDirectory()
        configPath = configFile ?? directory.appendingPathComponent("balancerd.yaml").path
        logPath = directory.appendingPathComponent("balancerd.log").path
        if configFile == nil { try config.write(toFile: configPath, atomically: true, encoding: .utf8) }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        let command = launcher + [Harness.balancerd, "--config", configPath, "--log-level", "debug"] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "JOURNAL_STREAM")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        if waitForStart {
            let started = Harness.waitUntil(timeout: 10) { self.log.contains("started:") || !self.process.isRunning }
            guard started, process.isRunning else {
                throw HarnessError("balancerd did not start; its log:\n\(log)")
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Everything the daemon wrote to stderr so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// How many times `text` appears in the log so far.
    func logCount(_ text: String) -> Int {
        log.components(separatedBy: text).count - 1
    }

    /// Replaces the configuration file the way editors and config tools do: a new file
    /// renamed over the old one.
    func rewriteConfig(_ text: String) throws {
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func send(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits at most `timeout` seconds for the daemon to exit; returns its status, or nil.
    func waitForExit(timeout: Double) -> Int32? {
        guard Harness.waitUntil(timeout: timeout, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
