import CEv

/// An `ev_signal` watcher. Signals can only be watched on the default loop.
public final class SignalWatcher {
    private let watcher: UnsafeMutablePointer<ev_signal>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public let signal: Int32
    public var handler: () -> Void

    public init(loop: EventLoop, signal: Int32, handler: @escaping () -> Void) {
        self.loop = loop
        self.signal = signal
        self.handler = handler
        watcher = .allocate(capacity: 1)
        cev_signal_init(watcher, { _, w, _ in
            let me = Unmanaged<SignalWatcher>.fromOpaque(w!.pointee.data).takeUnretainedValue()
            me.handler()
        }, signal)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_signal_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    public func start() { ev_signal_start(loop.raw, watcher) }

    public func stop() { ev_signal_stop(loop.raw, watcher) }
}
