import Glibc

/// One active check's outcome, as `/stats` shows it in `lastCheck`.
public struct HealthCheckResult: Sendable, Equatable {
    public var ok: Bool
    /// Why: `status 503`, `timeout`, `connection refused`, `check passed`…
    public var reason: String
    /// From the start of the connect to the verdict, in seconds.
    public var duration: Double
    /// When the verdict came, in Unix seconds.
    public var at: Double

    public init(ok: Bool, reason: String, duration: Double, at: Double) {
        self.ok = ok
        self.reason = reason
        self.duration = duration
        self.at = at
    }

    /// A monotonic clock, in seconds, for durations.
    static func monotonicNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

/// How long a service's checks took: a Prometheus histogram with fixed buckets.
public struct CheckDurationHistogram: Sendable, Equatable {
    /// Upper bounds in seconds; one more bucket, +Inf, holds the rest.
    public static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Observations per bucket (not cumulative), the last one for +Inf.
    public private(set) var buckets = [UInt64](repeating: 0, count: bounds.count + 1)
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    public init() {}

    public mutating func record(_ seconds: Double) {
        let index = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
        buckets[index] += 1
        sum += seconds
        count += 1
    }

    /// Observations at or under each bound, then the total (+Inf), as Prometheus writes them.
    public var cumulative: [UInt64] {
        var total: UInt64 = 0
        return buckets.map { total += $0; return total }
    }
}
