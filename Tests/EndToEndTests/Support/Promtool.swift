import Foundation

extension Harness {
    /// Whether `promtool check metrics` (from Debian's prometheus package) accepts `metrics`.
    static func promtoolAccepts(_ metrics: String) throws -> Bool {
        let file = temporaryDirectory().appendingPathComponent("metrics.txt")
        try metrics.write(to: file, atomically: true, encoding: .utf8)
        let promtool = Process()
        promtool.executableURL = URL(fileURLWithPath: "/bin/sh")
        promtool.arguments = ["-c", "promtool check metrics < '\(file.path)'"]
        try promtool.run()
        guard waitUntil(timeout: 20, { !promtool.isRunning }) else { return false }
        return promtool.terminationStatus == 0
    }
}
