import CEv

/// An `ev_timer`. One object serves as a named timer (connect, idle, drain deadline) and is
/// re-armed in place: `again(after:)` is libev's cheap `ev_timer_again`.
public final class TimerWatcher {
    private let watcher: UnsafeMutablePointer<ev_timer>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public var handler: () -> Void

    public init(loop: EventLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        watcher = .allocate(capacity: 1)
        cev_timer_init(watcher, { _, w, _ in
            // No retain: a watcher is never freed inside its own callback (owners stop it
            // and hand it to `EventLoop.retire`), so the loop's reference is enough.
            Unmanaged<TimerWatcher>.fromOpaque(w!.pointee.data)._withUnsafeGuaranteedRef { $0.handler() }
        }, 0, 0)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_timer_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    /// Fires once after `after` seconds, then every `repeating` seconds if that is not zero.
    public func start(after: Double, repeating: Double = 0) {
        ev_timer_stop(loop.raw, watcher)
        cev_timer_set(watcher, after, repeating)
        ev_timer_start(loop.raw, watcher)
    }

    /// Re-arms the timer to fire `after` seconds from now (and repeat at that period).
    public func again(after: Double) {
        watcher.pointee.repeat = after
        ev_timer_again(loop.raw, watcher)
    }

    public func stop() { ev_timer_stop(loop.raw, watcher) }

    public var isActive: Bool { cev_is_active(watcher) != 0 }
}
