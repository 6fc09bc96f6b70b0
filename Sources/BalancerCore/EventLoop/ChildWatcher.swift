import CEv

/// An `ev_child` watcher: calls `handler` with the wait status once process `pid` exits.
///
/// libev's default loop reaps every child itself (its own SIGCHLD handler), so a child's
/// exit is learnt here, not by a `waitpid` of one's own. Default loop only.
public final class ChildWatcher {
    private let watcher: UnsafeMutablePointer<ev_child>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public let pid: Int32
    public var handler: (Int32) -> Void

    public init(loop: EventLoop, pid: Int32, handler: @escaping (Int32) -> Void) {
        self.loop = loop
        self.pid = pid
        self.handler = handler
        watcher = .allocate(capacity: 1)
        cev_child_init(watcher, { _, w, _ in
            let me = Unmanaged<ChildWatcher>.fromOpaque(w!.pointee.data).takeUnretainedValue()
            me.handler(w!.pointee.rstatus)
        }, pid, 0)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_child_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    public func start() { ev_child_start(loop.raw, watcher) }

    public func stop() { ev_child_stop(loop.raw, watcher) }
}
