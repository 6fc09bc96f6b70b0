/// `type: postgres`: an SSLRequest, which a PostgreSQL server answers `S` or `N`, then a
/// startup packet. The server only says whether it takes connections once it has read the
/// startup packet: an `E` error that it cannot accept connections now (SQLSTATE 57P03: it
/// is shutting down, starting up, or in recovery with hot standby off) fails the check;
/// any other answer (an authentication request, an error about the role or pg_hba.conf)
/// means it does, and passes. After `S` the startup packet goes on a new connection, as
/// balancerd does not speak TLS to the server; after `N` on the same one.
public struct PostgresCheckExchange: CheckExchange {
    /// SSLRequest: length 8, code 80877103.
    public let request: [UInt8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
    private var sentStartup = false

    public init() {}

    /// Protocol 3.0 for user `balancerd`, which need not exist: the check never authenticates.
    public static let startupPacket: [UInt8] = {
        var body: [UInt8] = [0x00, 0x03, 0x00, 0x00]
        for text in ["user", "balancerd", "database", "postgres", "application_name", "balancerd-health-check"] {
            body += Array(text.utf8) + [0]
        }
        body.append(0)
        return bigEndian32(body.count + 4) + body
    }()

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        guard let first = answer.first else { return ended ? HealthCheckExchange.endedEarly(answer) : .more }
        if !sentStartup && first != UInt8(ascii: "E") {
            guard first == UInt8(ascii: "S") || first == UInt8(ascii: "N") else { return .fail("unexpected answer") }
            sentStartup = true
            return first == UInt8(ascii: "S") ? .reconnect(Self.startupPacket) : .send(Self.startupPacket)
        }
        // A message: type, length (itself included), body.
        let bytes = Array(answer)
        guard bytes.count >= 5 else { return ended ? .fail("unexpected answer") : .more }
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        switch first {
        case UInt8(ascii: "R"):
            return .pass("accepts connections")
        case UInt8(ascii: "E"):
            guard length >= 4, length < HealthCheckExchange.answerLimit else { return .fail("unexpected answer") }
            guard bytes.count >= 1 + length else { return ended ? .fail("unexpected answer") : .more }
            let fields = Self.errorFields(bytes[5..<(1 + length)])
            let message = fields[UInt8(ascii: "M")] ?? ""
            if fields[UInt8(ascii: "C")] == "57P03" || Self.refusalWords.contains(where: message.contains) {
                return .fail(message.isEmpty ? "cannot accept connections now" : message)
            }
            return .pass("accepts connections")
        default:
            return .fail("unexpected answer")
        }
    }

    /// Words of the messages of a server that does not take connections, for servers that
    /// leave out the SQLSTATE.
    static let refusalWords = ["shutting down", "starting up", "in recovery", "not yet accepting", "not accepting connections"]

    /// An ErrorResponse's fields: a code byte, then NUL-terminated text, until a NUL.
    static func errorFields(_ body: ArraySlice<UInt8>) -> [UInt8: String] {
        var fields: [UInt8: String] = [:]
        var rest = body
        while let code = rest.first, code != 0 {
            rest = rest.dropFirst()
            let end = rest.firstIndex(of: 0) ?? rest.endIndex
            fields[code] = HealthCheckExchange.printable(rest[..<end], limit: 200)
            rest = rest[end...].dropFirst()
        }
        return fields
    }

    static func bigEndian32(_ value: Int) -> [UInt8] {
        [UInt8(value >> 24 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }
}
