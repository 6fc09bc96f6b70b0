/// `type: tls`: a ClientHello (TLS 1.3 and 1.2 suites, with `serverName` as SNI when set)
/// answered by a ServerHello. An alert (no certificate for the name, no common version)
/// fails with its name. The check stops there: no key is ever computed.
public struct TLSCheckExchange: CheckExchange {
    public let request: [UInt8]

    /// `random`: 64 bytes, the hello's random and its X25519 key share.
    public init(serverName: String?, random: [UInt8]) {
        request = Self.clientHello(serverName: serverName, random: random)
    }

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        let bytes = Array(answer)
        guard bytes.count >= 6 else {
            if let first = bytes.first, first != 0x16 && first != 0x15 { return .fail("unexpected answer (not TLS)") }
            return ended ? HealthCheckExchange.endedEarly(answer) : .more
        }
        guard bytes[1] == 3 else { return .fail("unexpected answer (not TLS)") }
        switch bytes[0] {
        case 0x16:
            return bytes[5] == 2 ? .pass("server hello") : .fail("unexpected answer (handshake message \(bytes[5]))")
        case 0x15:
            guard bytes.count >= 7 else { return ended ? .fail("unexpected answer") : .more }
            return .fail("tls alert \(Self.alertName(bytes[6]))")
        default:
            return .fail("unexpected answer (not TLS)")
        }
    }

    static func alertName(_ code: UInt8) -> String {
        let names: [UInt8: String] = [
            10: "unexpected_message", 40: "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter",
            50: "decode_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
            109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
        ]
        return names[code] ?? String(code)
    }

    static func clientHello(serverName: String?, random: [UInt8]) -> [UInt8] {
        precondition(random.count >= 64)
        func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
        func vector16(_ bytes: [UInt8]) -> [UInt8] { u16(bytes.count) + bytes }
        func extensionBlock(_ type: Int, _ body: [UInt8]) -> [UInt8] { u16(type) + vector16(body) }

        var extensions: [UInt8] = []
        if let serverName {
            let name = Array(serverName.utf8)
            extensions += extensionBlock(0x0000, vector16([0] + vector16(name)))
        }
        extensions += extensionBlock(0x000a, vector16([0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]))  // x25519, P-256, P-384
        extensions += extensionBlock(0x000b, [1, 0])  // uncompressed points
        extensions += extensionBlock(0x000d, vector16([
            0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06,
            0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x02, 0x03, 0x02, 0x01,
        ]))
        extensions += extensionBlock(0x002b, [4, 0x03, 0x04, 0x03, 0x03])  // TLS 1.3, 1.2
        extensions += extensionBlock(0x0033, vector16([0x00, 0x1d] + vector16(Array(random[32..<64]))))

        let suites: [UInt8] = [
            0x13, 0x01, 0x13, 0x02, 0x13, 0x03,  // TLS 1.3
            0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30, 0xcc, 0xa9, 0xcc, 0xa8,  // ECDHE
            0x00, 0x9c, 0x00, 0x9d, 0x00, 0x2f, 0x00, 0x35,  // RSA
        ]
        var hello: [UInt8] = [0x03, 0x03] + random[0..<32]
        hello += [0]  // no session id
        hello += vector16(suites)
        hello += [1, 0]  // null compression
        hello += vector16(extensions)
        let handshake: [UInt8] = [0x01, UInt8(hello.count >> 16 & 0xff)] + u16(hello.count) + hello
        return [0x16, 0x03, 0x01] + vector16(handshake)
    }
}
