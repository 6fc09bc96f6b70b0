/// The two sides of a proxied connection, in Envoy's words.
public enum Side: Sendable, Equatable {
    /// The client.
    case downstream
    /// The endpoint.
    case upstream

    public var peer: Side { self == .downstream ? .upstream : .downstream }
}

/// Why a connection ended: what `/stats` counts and the connection log's `end` names (see
/// `logName`). The failures are the clients that were never served at all.
public enum CloseReason: Sendable, Equatable {
    /// Every connect tried failed (refused, reset, timed out).
    case connectFailed
    /// No endpoint of the service was up.
    case noHealthyEndpoint
    /// Every eligible endpoint was at its `maxConnections`, and the service has no queue.
    case overLimit
    /// As `overLimit`, and the service's queue was full.
    case queueFull
    /// Waited in the service's queue for `queue.timeout` without a free slot.
    case queueTimeout
    /// `limits.maxConnections` was reached: refused at accept, before it became a session.
    case globalLimit
    /// Both directions finished with a FIN; `closedFirst` sent the first one.
    case completed(closedFirst: Side)
    /// A side reset the connection, or a read or write on it failed.
    case reset(Side)
    /// No byte moved either way for `idleTimeout`.
    case idleTimeout
    /// Still open when the drain deadline of a shutdown passed.
    case drainDeadline
    /// Closed from the admin port (`POST .../close`).
    case adminClose
    /// UDP: the session was silent both ways for its service's `sessionTimeout`.
    case sessionTimeout
    /// An address shared by server name: the first bytes were not a TLS ClientHello.
    case notTLS
    /// The ClientHello named no service of the address (and there is no `"*"`).
    case unmatched
    /// The whole ClientHello did not arrive within `helloTimeout`.
    case helloTimeout

    /// True when the client was never served.
    public var isFailure: Bool {
        switch self {
        case .connectFailed, .noHealthyEndpoint, .overLimit, .queueFull, .queueTimeout, .globalLimit, .notTLS, .unmatched, .helloTimeout: true
        default: false
        }
    }

    /// The connection log's `end` value.
    public var logName: String {
        switch self {
        case .completed(closedFirst: .downstream): "client-closed"
        case .completed(closedFirst: .upstream): "endpoint-closed"
        case .reset(.downstream): "client-reset"
        case .reset(.upstream): "endpoint-reset"
        case .idleTimeout: "idle-timeout"
        case .connectFailed: "connect-failed"
        case .noHealthyEndpoint: "no-endpoint"
        case .overLimit: "over-limit"
        case .queueFull: "queue-full"
        case .queueTimeout: "queue-timeout"
        case .globalLimit: "global-limit"
        case .drainDeadline: "drain-deadline"
        case .adminClose: "admin-close"
        case .sessionTimeout: "session-timeout"
        case .notTLS: "not-tls"
        case .unmatched: "unmatched"
        case .helloTimeout: "hello-timeout"
        }
    }

    /// Whether `accessLog.sample` applies: a connection both sides closed in turn. Every
    /// other end (failures, resets, timeouts, forced closes) is always logged.
    public var isSampled: Bool {
        switch self {
        case .completed, .sessionTimeout: return true
        default: return false
        }
    }
}

/// The life of one proxied connection as a value: connecting (with retries), relaying with
/// each direction half-closable on its own, closed. Mutating methods take events and
/// return the action the I/O code must carry out; nothing here touches a socket.
public struct ConnectionState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable { case connecting, relaying, closed }

    /// One direction of the byte stream, named by the side it reads from.
    public typealias Flow = RelayDirection.Flow

    public enum Action: Sendable, Equatable {
        /// Connect to the next eligible endpoint.
        case connect
        /// The upstream is connected: start moving bytes both ways.
        case startRelay
        /// Pass a FIN on: `shutdown(SHUT_WR)` on this side.
        case shutdownWrite(Side)
        /// Close both sides.
        case close(CloseReason)
        /// Nothing to do yet.
        case none
    }

    public private(set) var phase: Phase = .connecting
    /// Connects tried so far, the first one included.
    public private(set) var attempts = 0
    /// How many connects may follow a failed one.
    public let retries: Int
    private var fromDownstream: Flow = .open
    private var fromUpstream: Flow = .open

    public init(retries: Int) {
        self.retries = retries
    }

    /// A connection already relaying, as another process handed it over: each direction
    /// where its half-close had got to.
    public init(relaying fromDownstream: Flow, _ fromUpstream: Flow, attempts: Int, retries: Int) {
        self.retries = retries
        self.attempts = attempts
        phase = .relaying
        self.fromDownstream = fromDownstream
        self.fromUpstream = fromUpstream
    }

    /// The client was accepted.
    public mutating func start() -> Action {
        attempts = 1
        return .connect
    }

    /// No endpoint could be chosen for the next connect.
    public mutating func noEndpoint() -> Action {
        let reason: CloseReason = attempts > 1 ? .connectFailed : .noHealthyEndpoint
        return close(reason)
    }

    /// Every endpoint that could take the connection is full, and there is no room to wait
    /// (`queueFull`: the service has a queue, and it is full).
    public mutating func allFull(queueFull: Bool = false) -> Action {
        close(queueFull ? .queueFull : .overLimit)
    }

    /// Waited in the queue too long.
    public mutating func queueTimeout() -> Action {
        guard phase == .connecting else { return .none }
        return close(.queueTimeout)
    }

    /// The connect in progress failed or timed out.
    public mutating func connectFailed() -> Action {
        guard phase == .connecting else { return .none }
        if attempts <= retries {
            attempts += 1
            return .connect
        }
        return close(.connectFailed)
    }

    public mutating func connected() -> Action {
        guard phase == .connecting else { return .none }
        phase = .relaying
        return .startRelay
    }

    /// `side` sent FIN. `buffered` says whether bytes from it still wait to be written.
    public mutating func finReceived(from side: Side, buffered: Bool) -> Action {
        guard phase == .relaying else { return .none }
        if buffered {
            setFlow(from: side, .finPending)
            return .none
        }
        return passFin(from: side)
    }

    /// Everything buffered from `side` has been written to its peer.
    public mutating func drained(from side: Side) -> Action {
        guard phase == .relaying, flow(from: side) == .finPending else { return .none }
        return passFin(from: side)
    }

    /// A read or write on `side` failed, or it sent RST.
    public mutating func reset(_ side: Side) -> Action {
        guard phase != .closed else { return .none }
        return close(.reset(side))
    }

    public mutating func idleTimeout() -> Action {
        guard phase != .closed else { return .none }
        return close(.idleTimeout)
    }

    public mutating func drainDeadline() -> Action {
        guard phase != .closed else { return .none }
        return close(.drainDeadline)
    }

    /// Closed from the admin port.
    public mutating func adminClose() -> Action {
        guard phase != .closed else { return .none }
        return close(.adminClose)
    }

    /// Whether bytes from `side` may still arrive (its read side is open).
    public func isReading(from side: Side) -> Bool {
        phase == .relaying && flow(from: side) == .open
    }

    private mutating func passFin(from side: Side) -> Action {
        setFlow(from: side, .finished)
        if flow(from: side.peer) == .finished { return close(.completed(closedFirst: side.peer)) }
        return .shutdownWrite(side.peer)
    }

    private mutating func close(_ reason: CloseReason) -> Action {
        phase = .closed
        return .close(reason)
    }

    /// How far the half-close of the direction from `side` has got.
    public func flow(from side: Side) -> Flow {
        side == .downstream ? fromDownstream : fromUpstream
    }

    private mutating func setFlow(from side: Side, _ flow: Flow) {
        if side == .downstream { fromDownstream = flow } else { fromUpstream = flow }
    }
}
