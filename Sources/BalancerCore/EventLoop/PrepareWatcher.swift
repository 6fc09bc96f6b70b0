import CEv

/// An `ev_prepare`: its handler runs once the callbacks of a loop iteration are all done,
/// just before the loop waits for events again. (The loop's `afterCallbacks` runs from an
/// `ev_check` watcher, which libev invokes before the other callbacks of the *next*
/// iteration: work that must happen in the same wakeup as the callbacks that queued it,
/// such as sending their batched datagrams, belongs here.)
///
/// Started only while there is such work, so that an idle loop does not call it.
public final class PrepareWatcher {
    private let watcher: UnsafeMutablePointer<ev_prepare>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public var handler: () -> Void

    public init(loop: EventLoop, handler: @escaping () -> Void) {
        self.loop = loop
        self.handler = handler
        watcher = .allocate(capacity: 1)
        cev_prepare_init(watcher) { _, w, _ in
            // No retain: its owner stops it before letting it go, never inside this callback.
            Unmanaged<PrepareWatcher>.fromOpaque(w!.pointee.data)._withUnsafeGuaranteedRef { $0.handler() }
        }
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_prepare_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    /// Runs the handler before the loop next waits (and before every wait after, until `stop`).
    public func start() {
        if cev_is_active(watcher) == 0 { ev_prepare_start(loop.raw, watcher) }
    }

    public func stop() { ev_prepare_stop(loop.raw, watcher) }

    public var isActive: Bool { cev_is_active(watcher) != 0 }
}
