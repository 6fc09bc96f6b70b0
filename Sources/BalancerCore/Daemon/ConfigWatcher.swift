import Glibc

/// Watches the configuration file and calls `onChange` once a burst of changes is over.
///
/// Three ways a file changes are covered: an edit in place, an atomic rename over it, and
/// the `..data` symlink swap of a Kubernetes ConfigMap volume. libev's `ev_stat` reports the
/// first two at once; a symlink swap leaves the watched inode alone, so a light poll of
/// `stat()` (which follows symlinks) runs as well. Either way the file's identity, size and
/// times are compared, and `onChange` runs only after they have been still for `settle`
/// seconds, so a burst of writes gives one reload.
public final class ConfigWatcher {
    public static let pollInterval = 0.25
    public static let settle = 0.2

    /// What a change of the file looks like from `stat()`.
    public struct Signature: Equatable, Sendable {
        var device: UInt64 = 0
        var inode: UInt64 = 0
        var size: Int64 = -1
        var modified: Int = 0
        var changed: Int = 0

        /// The file's signature now (following symlinks); an absent file has its own.
        public static func of(path: String) -> Signature {
            var info = stat()
            guard stat(path, &info) == 0 else { return Signature() }
            return Signature(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                             modified: info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec,
                             changed: info.st_ctim.tv_sec * 1_000_000_000 + info.st_ctim.tv_nsec)
        }
    }

    private let path: String
    private let statWatcher: StatWatcher
    private let poll: TimerWatcher
    private let settleTimer: TimerWatcher
    private var signature: Signature
    public var onChange: () -> Void = {}

    public init(loop: EventLoop, path: String) {
        self.path = path
        signature = Signature.of(path: path)
        statWatcher = StatWatcher(loop: loop, path: path, interval: Self.pollInterval, handler: {})
        poll = TimerWatcher(loop: loop, handler: {})
        settleTimer = TimerWatcher(loop: loop, handler: {})
        statWatcher.handler = { [unowned self] in self.check() }
        poll.handler = { [unowned self] in self.check() }
        settleTimer.handler = { [unowned self] in self.settled() }
    }

    public func start() {
        statWatcher.start()
        poll.start(after: Self.pollInterval, repeating: Self.pollInterval)
    }

    public func stop() {
        statWatcher.stop()
        poll.stop()
        settleTimer.stop()
    }

    /// Takes the file as it is now as the known state (after a reload read it).
    public func acceptCurrent() {
        signature = Signature.of(path: path)
    }

    private func check() {
        let now = Signature.of(path: path)
        guard now != signature else { return }
        signature = now
        // Still changing: wait until it has been still for `settle`.
        settleTimer.start(after: Self.settle)
    }

    private func settled() {
        if Signature.of(path: path) != signature {
            check()
            return
        }
        onChange()
    }
}
