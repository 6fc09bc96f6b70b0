import Glibc
import Synchronization

/// One line per event on stderr. Under journald (`JOURNAL_STREAM` set) each line starts
/// with its `<N>` syslog priority, so the journal keeps the levels; elsewhere it starts with
/// a UTC timestamp and the level's name.
public enum Log {
    private static let threshold = Atomic<Int>(LogLevel.info.rank)
    private static let journal = Atomic<Bool>(false)

    /// Reads `JOURNAL_STREAM` once; call at start-up.
    public static func configureFromEnvironment() {
        journal.store(getenv("JOURNAL_STREAM") != nil, ordering: .relaxed)
    }

    public static func setLevel(_ level: LogLevel) {
        threshold.store(level.rank, ordering: .relaxed)
    }

    public static func isEnabled(_ level: LogLevel) -> Bool {
        level.rank >= threshold.load(ordering: .relaxed)
    }

    public static func debug(_ message: @autoclosure () -> String) { write(.debug, message) }
    public static func info(_ message: @autoclosure () -> String) { write(.info, message) }
    public static func notice(_ message: @autoclosure () -> String) { write(.notice, message) }
    public static func warning(_ message: @autoclosure () -> String) { write(.warning, message) }
    public static func error(_ message: @autoclosure () -> String) { write(.error, message) }

    private static func write(_ level: LogLevel, _ message: () -> String) {
        guard isEnabled(level) else { return }
        let text = message().replacingNewlines()
        let line: String
        if journal.load(ordering: .relaxed) {
            line = "<\(level.syslogPriority)>\(text)\n"
        } else {
            line = "\(timestamp()) \(level.rawValue): \(text)\n"
        }
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            offset += n
        }
    }

    private static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(spec.tv_nsec / 1_000_000)
        let msText = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}

private extension String {
    func replacingNewlines() -> String {
        contains("\n") ? split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " | ") : self
    }
}
