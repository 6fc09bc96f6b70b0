import CEv
import Glibc

/// An `ev_stat` watcher: calls `handler` when the attributes of `path` change (libev uses
/// inotify where it can, and polls every `interval` otherwise).
public final class StatWatcher {
    private let watcher: UnsafeMutablePointer<ev_stat>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    /// libev keeps this pointer for the watcher's whole life.
    private let cPath: UnsafeMutablePointer<CChar>
    public var handler: () -> Void

    public init(loop: EventLoop, path: String, interval: Double, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        cPath = strdup(path)!
        watcher = .allocate(capacity: 1)
        cev_stat_init(watcher, { _, w, _ in
            let me = Unmanaged<StatWatcher>.fromOpaque(w!.pointee.data).takeUnretainedValue()
            me.handler()
        }, cPath, interval)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_stat_stop(loop.raw, watcher)
        watcher.deallocate()
        free(cPath)
    }

    public func start() { ev_stat_start(loop.raw, watcher) }
    public func stop() { ev_stat_stop(loop.raw, watcher) }
}
