import Glibc

/// One client connection as the connection log shows it: built when the connection ends
/// from what the session measured (`ConnectionMeasure`) and what it knows (service,
/// listener, endpoint, close reason), then formatted by `ConnectionLogFormat`.
public struct ConnectionRecord: Sendable, Equatable {
    /// When it was accepted: seconds since the epoch (the loop's clock).
    public var start: Double
    public var durationMs: Int
    /// nil when the client's address could not be read (it had already gone).
    public var client: PeerAddress?
    public var listen: SocketAddress
    /// nil for a connection to an address shared by server name that reached no service
    /// (not TLS, no match, too slow a hello).
    public var service: String?
    /// The endpoint that served it; for `connectFailed` the last one tried; else nil.
    public var endpoint: SocketAddress?
    /// Connects tried (0 when none was made).
    public var attempts: Int
    /// Time spent waiting in the service's queue.
    public var queueMs: Int
    /// How long the connect that succeeded took; nil when none did.
    public var connectMs: Int?
    /// From the client to the endpoint.
    public var bytesIn: UInt64
    /// From the endpoint to the client.
    public var bytesOut: UInt64
    public var end: CloseReason
    public var worker: Int
    /// UDP sessions: datagrams from the client and to it (the line adds `datagramsIn` and
    /// `datagramsOut`); nil for TCP connections.
    public var datagrams: (in: Int, out: Int)?

    public static func == (lhs: ConnectionRecord, rhs: ConnectionRecord) -> Bool {
        lhs.start == rhs.start && lhs.durationMs == rhs.durationMs && lhs.client == rhs.client && lhs.listen == rhs.listen
            && lhs.service == rhs.service && lhs.endpoint == rhs.endpoint && lhs.attempts == rhs.attempts && lhs.queueMs == rhs.queueMs
            && lhs.connectMs == rhs.connectMs && lhs.bytesIn == rhs.bytesIn && lhs.bytesOut == rhs.bytesOut && lhs.end == rhs.end
            && lhs.worker == rhs.worker && lhs.datagrams?.in == rhs.datagrams?.in && lhs.datagrams?.out == rhs.datagrams?.out
    }

    public init(start: Double, durationMs: Int, client: PeerAddress?, listen: SocketAddress, service: String?, endpoint: SocketAddress?,
                attempts: Int, queueMs: Int, connectMs: Int?, bytesIn: UInt64, bytesOut: UInt64, end: CloseReason, worker: Int) {
        self.start = start
        self.durationMs = durationMs
        self.client = client
        self.listen = listen
        self.service = service
        self.endpoint = endpoint
        self.attempts = attempts
        self.queueMs = queueMs
        self.connectMs = connectMs
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.end = end
        self.worker = worker
    }
}

/// A client's address in its binary form: read with one `getpeername` when the connection
/// starts, turned into text only when a line is written (no allocation either way).
public struct PeerAddress: Sendable, Equatable {
    public var isIPv6: Bool
    /// Network byte order; IPv4 in the first 4 bytes.
    public var bytes: (UInt64, UInt64)
    public var port: UInt16

    public init?(_ address: SocketAddress) {
        guard let raw = address.addressBytes else { return nil }
        var pair: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &pair) { $0.copyBytes(from: raw) }
        isIPv6 = address.family == .ipv6
        bytes = pair
        port = address.port
    }

    /// The peer of connected socket `fd`; nil once it has gone (`ENOTCONN`).
    public init?(peerOf fd: Int32) {
        var storage = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        port = UInt16(bigEndian: storage.sin6_port)
        var pair: (UInt64, UInt64) = (0, 0)
        switch Int32(storage.sin6_family) {
        case AF_INET6:
            isIPv6 = true
            withUnsafeMutableBytes(of: &pair) { out in withUnsafeBytes(of: &storage.sin6_addr) { out.copyMemory(from: $0) } }
        case AF_INET:
            isIPv6 = false
            // sin_addr sits where sin6_flowinfo does.
            withUnsafeMutableBytes(of: &pair) { out in withUnsafeBytes(of: &storage.sin6_flowinfo) { out.copyMemory(from: $0) } }
        default:
            return nil
        }
        bytes = pair
    }

    public static func == (lhs: PeerAddress, rhs: PeerAddress) -> Bool {
        lhs.isIPv6 == rhs.isIPv6 && lhs.bytes == rhs.bytes && lhs.port == rhs.port
    }

    /// `ip:port`, IPv6 in brackets, appended to `out`.
    func append(to out: inout [UInt8]) {
        var text = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // 64 bytes
        var raw = bytes
        let length = withUnsafeMutableBytes(of: &text) { buffer -> Int in
            let chars = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
            let ok = withUnsafeBytes(of: &raw) { inet_ntop(isIPv6 ? AF_INET6 : AF_INET, $0.baseAddress, chars, socklen_t(buffer.count)) }
            return ok == nil ? 0 : strlen(chars)
        }
        if isIPv6 { out.append(UInt8(ascii: "[")) }
        withUnsafeBytes(of: &text) { out.append(contentsOf: $0[0..<length]) }
        if isIPv6 { out.append(UInt8(ascii: "]")) }
        out.append(UInt8(ascii: ":"))
        ConnectionLogFormat.appendDecimal(UInt64(port), to: &out)
    }

    /// `ip:port`, for the daemon's own log lines.
    public var description: String {
        var out: [UInt8] = []
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// What a session measures for its log line, as things happen (loop times in seconds).
struct ConnectionMeasure {
    let start: Double
    var client: PeerAddress?
    var attempts = 0
    private var queuedAt = 0.0
    private(set) var queueTime = 0.0
    private var connectAt = 0.0
    private(set) var connectTime: Double?
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0

    init(start: Double) {
        self.start = start
    }

    /// The figures of a connection another process started (a takeover): its log line
    /// covers the whole connection.
    init(start: Double, attempts: Int, connectTime: Double, bytesIn: UInt64, bytesOut: UInt64) {
        self.start = start
        self.attempts = attempts
        self.connectTime = connectTime
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }

    mutating func connectStarted(_ now: Double) {
        attempts += 1
        connectAt = now
    }

    mutating func connected(_ now: Double) { connectTime = now - connectAt }

    mutating func queued(_ now: Double) { queuedAt = now }

    mutating func leftQueue(_ now: Double) { queueTime += now - queuedAt }

    static func milliseconds(_ seconds: Double) -> Int { max(0, Int((seconds * 1000).rounded())) }
}
