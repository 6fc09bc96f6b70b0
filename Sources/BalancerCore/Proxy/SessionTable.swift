/// A worker's sessions by the tokens their sockets carry in its poller (see `EdgePoller`):
/// a slot and a serial number, so that an event for a session that has gone finds nothing,
/// even once its slot holds a newer session.
///
/// A token's bit 0 is the side (0 downstream, 1 upstream), bits 1–31 the slot, and the
/// high 32 bits the serial number the slot had when the session took it. (Generic so that
/// it can be tested without sessions, which need a proxy.)
struct SessionTable<Object: AnyObject> {
    private struct Entry {
        var serial: UInt32
        /// Unretained: `Proxy.sessions` holds the session, which leaves this table as it
        /// closes, before it can be freed.
        var session: Unmanaged<Object>?
    }

    private var slots: ContiguousArray<Entry> = []
    private var free: [Int] = []
    private var serial: UInt32 = 0

    /// Takes a slot for `session`: the token of its downstream socket.
    mutating func insert(_ session: Object) -> UInt64 {
        serial &+= 1
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            slots[slot] = Entry(serial: serial, session: .passUnretained(session))
        } else {
            slot = slots.count
            slots.append(Entry(serial: serial, session: .passUnretained(session)))
        }
        return UInt64(serial) << 32 | UInt64(slot) << 1
    }

    /// Gives the slot of the session with `token` back; its events find nothing from now on.
    mutating func remove(_ token: UInt64) {
        let slot = Self.slot(token)
        guard slot < slots.count, slots[slot].serial == UInt32(truncatingIfNeeded: token >> 32) else { return }
        slots[slot].session = nil
        free.append(slot)
    }

    /// The session `token` belongs to, if it is still there.
    @inline(__always)
    func session(for token: UInt64) -> Unmanaged<Object>? {
        let slot = Self.slot(token)
        guard slot < slots.count else { return nil }
        let entry = slots[slot]
        return entry.serial == UInt32(truncatingIfNeeded: token >> 32) ? entry.session : nil
    }

    /// The token of `side` of the session whose downstream token is `token`.
    static func token(_ token: UInt64, side: Side) -> UInt64 {
        side == .downstream ? token & ~1 : token | 1
    }

    static func side(of token: UInt64) -> Side { token & 1 == 0 ? .downstream : .upstream }

    private static func slot(_ token: UInt64) -> Int { Int(truncatingIfNeeded: (token & 0xffff_ffff) >> 1) }
}
