import Foundation
import Testing

/// Runs a built program to completion, with bounded waits.
enum Program {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `path` with `arguments` for at most `timeout` seconds.
    static func run(_ path: String, _ arguments: [String], timeout: Double = 10) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let finished = Harness.waitUntil(timeout: timeout) { !process.isRunning }
        if !finished { process.terminate() }
        #expect(finished, "\(path) \(arguments) did not finish within \(timeout) s")
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }
}
