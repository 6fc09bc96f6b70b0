import CEv
import Glibc

/// Edge-triggered readiness for the proxy's sessions, as one descriptor in the libev loop.
///
/// Design note: libev watches descriptors level-triggered, and every change of what a
/// socket is watched for becomes an `epoll_ctl`: after a connect completes (write to read),
/// when a side reaches end of file (libev removes it lazily, on the next spurious event),
/// when a half-closed socket hangs up. A session paid five of them per connection. Here
/// each session socket joins an epoll set of this poller's once, for input, output and
/// peer-closed, edge-triggered, and never changes: two `epoll_ctl` per proxied connection,
/// and none on close (closing a descriptor drops it from the set). libev still runs the
/// loop: it watches this set's descriptor like any other, and the poller drains a bounded
/// batch of events from it each time it is ready. Timers, signals, listeners, health checks
/// and the admin port stay on plain libev watchers.
///
/// Edge-triggered means an event is reported once: a session keeps what it was told
/// (readable, writable) until a read or write meets EAGAIN. A session that stops reading
/// at its per-wakeup bound while bytes remain asks to be called again (`again`), on the
/// next loop iteration.
///
/// Each registration carries a 64-bit token, handed back with its events to the poller's
/// function along with the owner's context. Tokens, not object pointers: a closed socket
/// leaves the set only once no process holds it, and a child between fork and exec, or a
/// descriptor in flight to another process, holds it a moment longer; an event that comes
/// then must find nothing, never a freed session (the owner checks the token).
public final class EdgePoller {
    /// What the kernel reported for one descriptor.
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: 1)
        public static let writable = Events(rawValue: 2)
        /// The peer sent FIN: once what is queued has been read, the next read is end of file.
        public static let peerClosed = Events(rawValue: 4)
        /// An error is pending on the socket (a failed connect, a reset).
        public static let failed = Events(rawValue: 8)
    }

    /// Called with the owner's context, a registration's token and what is ready.
    public typealias Function = @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32) -> Void

    static let batch: Int32 = 64

    private let epoll: Int32
    private let function: Function
    private let context: UnsafeMutableRawPointer?
    private var watcher: IOWatcher!
    private let events: UnsafeMutablePointer<epoll_event>
    private var pending: [UInt64] = []
    private var pendingTimer: TimerWatcher!

    /// `context` (unretained) is passed to `function` with every event.
    public init(loop: EventLoop, context: UnsafeMutableRawPointer?, function: @escaping Function) throws(SystemError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(errno: errno, operation: "epoll_create1") }
        epoll = fd
        self.function = function
        self.context = context
        events = .allocate(capacity: Int(Self.batch))
        watcher = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _ in self.drain() }
        pendingTimer = TimerWatcher(loop: loop) { [unowned self] in self.runPending() }
        watcher.start()
    }

    deinit {
        watcher.stop()
        pendingTimer.stop()
        Glibc.close(epoll)
        events.deallocate()
    }

    /// Adds `fd` for good: input, output and peer-closed, edge-triggered. A socket that is
    /// ready already is reported at once.
    public func add(_ fd: Int32, token: UInt64) throws(SystemError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = token
        if epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0 { throw SystemError(errno: errno, operation: "epoll_ctl") }
    }

    /// Takes `fd` out of the set while it stays open (a socket handed to another process:
    /// closing this process's copy would not remove it while the other holds it).
    public func remove(_ fd: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event)
    }

    /// Calls the function with `token` and `.readable` on the next loop iteration: for a
    /// session that stopped at its per-wakeup bound with bytes left, which the kernel will
    /// not report again.
    public func again(_ token: UInt64) {
        if pending.isEmpty { pendingTimer.start(after: 0) }
        pending.append(token)
    }

    private func drain() {
        var count: Int32
        repeat { count = epoll_wait(epoll, events, Self.batch, 0) } while count < 0 && errno == EINTR
        for i in 0..<Int(max(count, 0)) {
            let raw = events[i].events
            let data = events[i].data.u64
            var ready: Events = []
            if raw & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { ready.insert(.readable) }
            if raw & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { ready.insert(.writable) }
            if raw & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 { ready.insert(.peerClosed) }
            if raw & EPOLLERR.rawValue != 0 { ready.insert(.failed) }
            function(context, data, ready.rawValue)
        }
    }

    private func runPending() {
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        for token in batch { function(context, token, Events.readable.rawValue) }
        if !pending.isEmpty { pendingTimer.start(after: 0) }
    }
}
