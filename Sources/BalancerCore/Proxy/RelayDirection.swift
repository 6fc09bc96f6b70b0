/// One direction of a proxied connection's byte stream, named by the side it reads from, as
/// a plain value: what waits to be written to the other side, whether the source has sent
/// its FIN (and whether it has been passed on), and whether the direction moves by splice.
///
/// It is what a takeover hands over for each direction (`TakeoverMessage`), and what a
/// session parked for one is rebuilt from.
public struct RelayDirection: Sendable, Equatable {
    /// How far the source's half-close has got.
    public enum Flow: UInt8, Sendable, Equatable {
        case open = 0
        /// The source sent FIN; bytes for the destination are still buffered.
        case finPending = 1
        /// The FIN has been passed on.
        case finished = 2
    }

    /// Bytes read from the source that the destination has not taken yet.
    public var pending: [UInt8]
    public var flow: Flow
    /// A bulk transfer: moved by splice(2) through a pipe.
    public var splicing: Bool

    public init(pending: [UInt8] = [], flow: Flow = .open, splicing: Bool = false) {
        self.pending = pending
        self.flow = flow
        self.splicing = splicing
    }

    /// Whether more bytes may arrive from the source.
    public var isReading: Bool { flow == .open }

    /// The flow once everything pending has been written: a pending FIN is then due to be
    /// passed on (the caller passes it on and the flow becomes `finished`).
    public var finDue: Bool { flow == .finPending && pending.isEmpty }
}
