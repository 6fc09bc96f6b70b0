import CEv

/// One libev loop. Owned by one thread; every watcher made from it belongs to that thread.
///
/// Besides running watchers, the loop offers `afterCallbacks`: work queued there runs once
/// the current batch of callbacks is over (from an `ev_check` watcher). Sessions use it to
/// release themselves, so that no object is freed while its own callback is on the stack.
///
/// `post` is the one thing other threads may call: it queues work for this loop's thread
/// and wakes it (an `ev_async`).
public final class EventLoop: @unchecked Sendable {
    let raw: OpaquePointer
    private let isDefault: Bool
    private let check: UnsafeMutablePointer<ev_check>
    private var deferred: [() -> Void] = []
    private let wakeup: UnsafeMutablePointer<ev_async>
    private let inboxLock = Lock()
    private var inbox: [@Sendable () -> Void] = []

    /// The process's default loop: the only one that can watch signals.
    public static func makeDefault() -> EventLoop {
        EventLoop(raw: cev_default_loop(), isDefault: true)
    }

    /// A new, independent loop (for worker threads and tests).
    public convenience init() {
        guard let raw = ev_loop_new(UInt32(EVFLAG_AUTO)) else { fatalError("ev_loop_new failed") }
        self.init(raw: raw, isDefault: false)
    }

    private init(raw: OpaquePointer, isDefault: Bool) {
        self.raw = raw
        self.isDefault = isDefault
        check = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        cev_check_init(check) { _, w, _ in
            // Runs on every loop iteration: no retain (the loop outlives its watchers).
            Unmanaged<EventLoop>.fromOpaque(w!.pointee.data)._withUnsafeGuaranteedRef { $0.runDeferred() }
        }
        check.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        ev_check_start(raw, check)
        // The check watcher alone must not keep the loop alive.
        ev_unref(raw)
        cev_async_init(wakeup) { _, w, _ in
            let loop = Unmanaged<EventLoop>.fromOpaque(w!.pointee.data).takeUnretainedValue()
            loop.runInbox()
        }
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        ev_async_start(raw, wakeup)
        // Nor the wakeup watcher (a worker thread keeps its loop alive with `holdOpen`).
        ev_unref(raw)
    }

    deinit {
        ev_ref(raw)
        ev_async_stop(raw, wakeup)
        wakeup.deallocate()
        ev_ref(raw)
        ev_check_stop(raw, check)
        check.deallocate()
        if !isDefault { ev_loop_destroy(raw) }
    }

    /// Runs until `stop()` or until no active watcher is left.
    public func run() { _ = ev_run(raw, 0) }

    /// Makes `run()` return after the current iteration.
    public func stop() { ev_break(raw, Int32(EVBREAK_ALL)) }

    /// The loop's cached time in seconds (updated once per iteration; cheap).
    public var now: Double { ev_now(raw) }

    /// The current time, read now rather than cached (for measuring work inside a callback).
    public var nowUpdated: Double {
        ev_now_update(raw)
        return ev_now(raw)
    }

    /// Keeps `run()` going with no other watcher active, until `stop()`: for a worker loop,
    /// which must stay ready for posted work.
    public func holdOpen() { ev_ref(raw) }

    /// Runs `body` on this loop's thread, soon. Safe to call from any thread.
    public func post(_ body: @escaping @Sendable () -> Void) {
        inboxLock.withLock { inbox.append(body) }
        ev_async_send(raw, wakeup)
    }

    private func runInbox() {
        let work = inboxLock.withLock {
            let work = inbox
            inbox.removeAll()
            return work
        }
        for body in work { body() }
    }

    /// Queues work to run after the callbacks of the current iteration.
    public func afterCallbacks(_ body: @escaping () -> Void) {
        deferred.append(body)
    }

    /// Keeps `object` alive until the current callbacks are over: for a watcher or session
    /// whose own callback may be the one dropping it.
    public func retire(_ object: AnyObject) {
        deferred.append { withExtendedLifetime(object) {} }
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let batch = deferred
            deferred.removeAll(keepingCapacity: true)
            for body in batch { body() }
        }
    }
}
