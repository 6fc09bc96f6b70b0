/// What a check makes of the answer so far.
public enum CheckVerdict: Sendable, Equatable {
    /// The whole exchange matched; the text says how (`status 200`).
    case pass(String)
    /// The reason, as `/stats` and the log show it (`status 503`, `unexpected answer`).
    case fail(String)
    /// Not decided yet: read more of the answer.
    case more
    /// The next step, on the same connection: send these bytes; the next answer starts afresh.
    case send([UInt8])
    /// The next step, on a new connection (the PROXY header first again): send these bytes.
    case reconnect([UInt8])
}

/// One check's conversation with an endpoint, as a value: bytes in, verdict out. It does
/// no I/O; `HealthProbe` connects, sends `request`, and hands every answer so far to
/// `judge` until the verdict is in.
public protocol CheckExchange: Sendable {
    /// What to send once connected (after the PROXY header); may be empty.
    var request: [UInt8] { get }
    /// Judges `answer`, everything received since the last step (at most
    /// `HealthCheckExchange.answerLimit` bytes). `ended` is true when the endpoint closed
    /// its side or the limit was reached: no more will come, so the verdict is never
    /// `.more`. Called once with an empty answer as soon as the request is sent.
    mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict
}

public enum HealthCheckExchange {
    /// An answer is read into a buffer of this size; a longer one is judged on this much.
    public static let answerLimit = 4096

    /// The exchange for a check of `kind`. `host` is the endpoint's address as a Host
    /// header gives it (`127.0.0.1:8080`); `random` gives a TLS ClientHello its random
    /// and key share (64 bytes).
    public static func make(_ kind: HealthCheckKind, host: String, random: [UInt8]) -> any CheckExchange {
        switch kind {
        case .tcp: SendExpectExchange(send: [], expect: [])
        case .sendExpect(let send, let expect): SendExpectExchange(send: send, expect: expect)
        case .http(let check): HTTPCheckExchange(check: check, host: host)
        case .redis: RedisCheckExchange()
        case .postgres: PostgresCheckExchange()
        case .mysql: MySQLCheckExchange()
        case .tls(let serverName): TLSCheckExchange(serverName: serverName, random: random)
        }
    }

    /// The reason when the endpoint closed before a whole answer came.
    static func endedEarly(_ answer: ArraySlice<UInt8>) -> CheckVerdict {
        .fail(answer.isEmpty ? "closed without an answer" : "unexpected answer")
    }

    /// `bytes` as text for a reason: printable ASCII, at most `limit` characters.
    static func printable(_ bytes: some Collection<UInt8>, limit: Int = 120) -> String {
        var text = String(decoding: bytes.prefix(limit).map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: " ") }, as: UTF8.self)
        while text.last == " " { text.removeLast() }
        return text
    }
}

extension Collection where Element == UInt8 {
    /// Where `needle` first occurs, if it does.
    func firstIndex(of needle: [UInt8]) -> Index? {
        guard !needle.isEmpty else { return startIndex }
        var start = startIndex
        while start != endIndex {
            if self[start...].starts(with: needle) { return start }
            formIndex(after: &start)
        }
        return nil
    }

    func contains(_ needle: [UInt8]) -> Bool { firstIndex(of: needle) != nil }
}

/// `type: tcp` (nothing to send, nothing to expect) and `type: send-expect`: `send`, then
/// an answer that starts with `expect`; read until it matched, differed, closed or timed out.
public struct SendExpectExchange: CheckExchange {
    public let request: [UInt8]
    let expect: [UInt8]

    public init(send: [UInt8], expect: [UInt8]) {
        request = send
        self.expect = expect
    }

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        let count = Swift.min(answer.count, expect.count)
        guard answer.prefix(count).elementsEqual(expect.prefix(count)) else { return .fail("unexpected answer") }
        if answer.count >= expect.count { return .pass("check passed") }
        return ended ? HealthCheckExchange.endedEarly(answer) : .more
    }
}

/// `type: redis`: PING answered by `+PONG`. An error such as `-LOADING` (a replica loading
/// its data set) fails with the server's text.
public struct RedisCheckExchange: CheckExchange {
    public let request = Array("*1\r\n$4\r\nPING\r\n".utf8)

    public init() {}

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        guard let end = answer.firstIndex(of: Array("\r\n".utf8)) else {
            return ended ? HealthCheckExchange.endedEarly(answer) : .more
        }
        let line = answer[..<end]
        if line.elementsEqual("+PONG".utf8) { return .pass("+PONG") }
        if line.first == UInt8(ascii: "-") { return .fail(HealthCheckExchange.printable(line)) }
        return .fail("unexpected answer")
    }
}

/// `type: mysql`: the server's greeting, a protocol-10 handshake packet. An error packet
/// (too many connections, host blocked) fails with the server's text.
public struct MySQLCheckExchange: CheckExchange {
    public let request: [UInt8] = []

    public init() {}

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        let bytes = Array(answer)
        guard bytes.count >= 5 else { return ended ? HealthCheckExchange.endedEarly(answer) : .more }
        let length = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
        guard bytes[3] == 0, length > 0 else { return .fail("unexpected answer") }
        let payload = bytes[4...].prefix(length)
        switch payload.first {
        case 0x0a:
            // Protocol 10: the server version follows, NUL-terminated.
            if let end = payload.firstIndex(of: 0) { return .pass("mysql \(HealthCheckExchange.printable(payload[(payload.startIndex + 1)..<end]))") }
            return ended || payload.count == length ? .fail("unexpected answer") : .more
        case 0xff:
            // An error packet: code, then (4.1+) '#' and a SQL state, then the message.
            guard payload.count == length || ended else { return .more }
            var message = payload.dropFirst(3)
            if message.first == UInt8(ascii: "#") { message = message.dropFirst(6) }
            return .fail(HealthCheckExchange.printable(message))
        default:
            return .fail("unexpected answer")
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing characters of `set` (spaces and tabs).
    func trimmed(_ set: String = " \t") -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
