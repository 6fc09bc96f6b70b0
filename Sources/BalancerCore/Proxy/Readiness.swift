/// What the edge-triggered poller has said of a session's two sockets (see `EdgePoller`):
/// a side stays readable or writable until a read or write on it meets EAGAIN, since the
/// kernel reports each change once. `peerClosed` stays once the peer's FIN is seen.
struct Readiness: Equatable {
    /// A set of sides, as two bits.
    struct Sides: Equatable {
        private var bits: UInt8 = 0

        func contains(_ side: Side) -> Bool { bits & Self.bit(side) != 0 }
        mutating func insert(_ side: Side) { bits |= Self.bit(side) }
        mutating func remove(_ side: Side) { bits &= ~Self.bit(side) }

        private static func bit(_ side: Side) -> UInt8 { side == .downstream ? 1 : 2 }
    }

    var readable = Sides()
    var writable = Sides()
    var peerClosed = Sides()

    /// Takes in an event for `side`.
    mutating func note(_ events: EdgePoller.Events, on side: Side) {
        if events.contains(.readable) { readable.insert(side) }
        if events.contains(.writable) { writable.insert(side) }
        if events.contains(.peerClosed) { peerClosed.insert(side) }
    }

    /// `side`'s socket is gone (a failed connect): a new one starts with nothing known.
    mutating func forget(_ side: Side) {
        readable.remove(side)
        writable.remove(side)
        peerClosed.remove(side)
    }
}
