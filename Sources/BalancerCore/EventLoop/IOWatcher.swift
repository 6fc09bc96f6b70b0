import CEv

/// Readiness of a file descriptor, as reported to an `IOWatcher`'s handler.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = IOEvents(rawValue: Int32(EV_READ))
    public static let write = IOEvents(rawValue: Int32(EV_WRITE))
}

/// An `ev_io` watcher: calls `handler` when its descriptor is ready for `events`.
///
/// The `ev_io` lives in its own allocation because libev keeps its address while it runs.
public final class IOWatcher {
    private let watcher: UnsafeMutablePointer<ev_io>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public private(set) var events: IOEvents
    public let fd: Int32
    public var handler: (IOEvents) -> Void

    public init(loop: EventLoop, fd: Int32, events: IOEvents = [], handler: @escaping (IOEvents) -> Void) {
        self.loop = loop
        self.fd = fd
        self.events = events
        self.handler = handler
        watcher = .allocate(capacity: 1)
        cev_io_init(watcher, { _, w, revents in
            let me = Unmanaged<IOWatcher>.fromOpaque(w!.pointee.data).takeUnretainedValue()
            me.handler(IOEvents(rawValue: revents))
        }, fd, events.rawValue)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_io_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    /// Watches for `events` from now on; an empty set stops the watcher.
    public func watch(_ newEvents: IOEvents) {
        if newEvents == events && (newEvents.isEmpty || isActive) { return }
        ev_io_stop(loop.raw, watcher)
        events = newEvents
        cev_io_set(watcher, fd, newEvents.rawValue)
        if !newEvents.isEmpty { ev_io_start(loop.raw, watcher) }
    }

    public func stop() {
        ev_io_stop(loop.raw, watcher)
    }

    public func start() {
        if !events.isEmpty { ev_io_start(loop.raw, watcher) }
    }

    public var isActive: Bool { cev_is_active(watcher) != 0 }
}
