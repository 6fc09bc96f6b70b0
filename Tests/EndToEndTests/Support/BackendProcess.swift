import Foundation
import Glibc

/// A `testbackend` process: a real endpoint on 127.0.0.1 (or another loopback address) that
/// greets with its name and echoes.
final class BackendProcess {
    let name: String
    let host: String
    let port: UInt16
    private let process: Process

    /// Starts a backend on `host`:`port` (0: any free port) and waits until it listens.
    init(name: String, host: String = "127.0.0.1", port: UInt16 = 0, mode: String = "echo") throws {
        self.name = name
        self.host = host
        process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.testbackend)
        process.arguments = ["--name", name, "--host", host, "--port", String(port), "--mode", mode]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The first line is "listening PORT"; wait for it at most 10 s.
        let text = Harness.readLine(from: output.fileHandleForReading.fileDescriptor, timeout: 10)
        guard text.hasPrefix("listening "), let actual = UInt16(text.dropFirst("listening ".count)) else {
            process.terminate()
            throw HarnessError("backend \(name) did not start (said '\(text)')")
        }
        self.port = actual
    }

    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Kills the backend at once (SIGKILL), as a crashed pod would go.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { kill() }
}
