import Glibc

/// What the daemon knows about itself beyond the data path: start time, the configuration
/// file and its generation, and how reloads went. Read by the admin port.
public final class RuntimeInfo {
    public struct ReloadResult: Sendable, Equatable {
        public var ok: Bool
        public var error: String?
        /// Seconds since the epoch.
        public var time: Double
    }

    public internal(set) var startTime: Double
    public let configPath: String
    /// 1 for the configuration loaded at start; one more for each successful reload.
    public internal(set) var generation = 1
    public internal(set) var lastReload: ReloadResult?
    public internal(set) var reloadSuccesses = 0
    public internal(set) var reloadFailures = 0

    public init(configPath: String) {
        self.configPath = configPath
        startTime = Self.wallClock()
    }

    public var uptime: Double { Self.wallClock() - startTime }

    /// Goes on from the figures of the process this one took over from.
    func restore(_ state: TakeoverMessage.State) {
        startTime = state.startTime
        generation = state.generation
        reloadSuccesses = state.reloadSuccesses
        reloadFailures = state.reloadFailures
    }

    func recordReload(ok: Bool, error: String?) {
        lastReload = ReloadResult(ok: ok, error: error, time: Self.wallClock())
        if ok {
            generation += 1
            reloadSuccesses += 1
        } else {
            reloadFailures += 1
        }
    }

    static func wallClock() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
