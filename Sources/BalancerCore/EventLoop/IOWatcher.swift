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
///
/// Besides a closure, a watcher can call a C function with a context pointer (`init(loop:
/// fd:context:function:)`). Sessions use that form: a closure's context would be retained
/// and released on every event of every connection; a function pointer is not counted.
public final class IOWatcher {
    /// Called with the watcher's `context` and the events that are ready.
    public typealias Function = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Void

    private let watcher: UnsafeMutablePointer<ev_io>
    private let loop: EventLoop  // strong: a watcher must be stopped before its loop goes
    public private(set) var events: IOEvents
    public let fd: Int32
    public var handler: (IOEvents) -> Void
    private let function: Function?
    /// Passed to `function`; set by the owner once it exists.
    public var context: UnsafeMutableRawPointer?

    public init(loop: EventLoop, fd: Int32, events: IOEvents = [], handler: @escaping (IOEvents) -> Void) {
        self.loop = loop
        self.fd = fd
        self.events = events
        self.handler = handler
        function = nil
        watcher = .allocate(capacity: 1)
        initialize()
    }

    public init(loop: EventLoop, fd: Int32, context: UnsafeMutableRawPointer? = nil, function: Function) {
        self.loop = loop
        self.fd = fd
        self.events = []
        self.handler = { _ in }
        self.function = function
        self.context = context
        watcher = .allocate(capacity: 1)
        initialize()
    }

    private func initialize() {
        cev_io_init(watcher, { _, w, revents in
            // No retain: a watcher is never freed inside its own callback (owners stop it
            // and hand it to `EventLoop.retire`), so the loop's reference is enough.
            Unmanaged<IOWatcher>.fromOpaque(w!.pointee.data)._withUnsafeGuaranteedRef { me in
                if let function = me.function {
                    function(me.context, revents)
                } else {
                    me.handler(IOEvents(rawValue: revents))
                }
            }
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
