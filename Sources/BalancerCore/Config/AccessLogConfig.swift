/// `accessLog:`: one line per client connection when it ends (see `AccessLog`).
public struct AccessLogConfig: Sendable, Equatable {
    /// A file (appended to; relative paths are relative to the configuration file's folder),
    /// or `stderr`.
    public var path: String
    public var format: AccessLogFormat = .json
    /// The share of successful connections logged (0-1); every other end is always logged.
    public var sample: Double = 1

    public static let stderrPath = "stderr"

    public init(path: String, format: AccessLogFormat = .json, sample: Double = 1) {
        self.path = path
        self.format = format
        self.sample = sample
    }

    public var isStderr: Bool { path == Self.stderrPath }
}

public enum AccessLogFormat: String, Sendable, Equatable, CaseIterable {
    case json
    case text
}
