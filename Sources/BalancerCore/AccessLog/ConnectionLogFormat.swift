import Glibc

/// The connection log's line for a record, appended to a byte buffer: a pure function,
/// and one that allocates nothing once the buffer has room (it is reused line after line).
///
/// `json`: one object with exactly the keys of `ConnectionRecord`, in that order, `null`
/// for what is missing. `text`: the same fields in the same order, space-separated, `-`
/// for null.
public enum ConnectionLogFormat {
    public static func append(_ record: ConnectionRecord, as format: AccessLogFormat, to out: inout [UInt8]) {
        switch format {
        case .json: appendJSON(record, to: &out)
        case .text: appendText(record, to: &out)
        }
        out.append(UInt8(ascii: "\n"))
    }

    /// One line as a string (for tests and tools).
    public static func line(_ record: ConnectionRecord, as format: AccessLogFormat) -> String {
        var out: [UInt8] = []
        append(record, as: format, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendJSON(_ r: ConnectionRecord, to out: inout [UInt8]) {
        func key(_ name: StaticString, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func quoted(_ body: (inout [UInt8]) -> Void) {
            out.append(UInt8(ascii: "\""))
            body(&out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "{"))
        key("time", first: true)
        quoted { appendTime(r.start, to: &$0) }
        key("durationMs")
        appendDecimal(UInt64(max(0, r.durationMs)), to: &out)
        key("client")
        if let client = r.client { quoted { client.append(to: &$0) } } else { appendLiteral("null", to: &out) }
        key("listen")
        quoted { appendAddress(r.listen, to: &$0) }
        key("service")
        if let service = r.service { quoted { appendEscaped(service, to: &$0) } } else { appendLiteral("null", to: &out) }
        key("endpoint")
        if let endpoint = r.endpoint { quoted { appendAddress(endpoint, to: &$0) } } else { appendLiteral("null", to: &out) }
        key("attempts")
        appendDecimal(UInt64(max(0, r.attempts)), to: &out)
        key("queueMs")
        appendDecimal(UInt64(max(0, r.queueMs)), to: &out)
        key("connectMs")
        if let connect = r.connectMs { appendDecimal(UInt64(max(0, connect)), to: &out) } else { appendLiteral("null", to: &out) }
        key("bytesIn")
        appendDecimal(r.bytesIn, to: &out)
        key("bytesOut")
        appendDecimal(r.bytesOut, to: &out)
        key("end")
        quoted { appendEscaped(r.end.logName, to: &$0) }
        key("worker")
        appendDecimal(UInt64(max(0, r.worker)), to: &out)
        if let datagrams = r.datagrams {
            key("datagramsIn")
            appendDecimal(UInt64(max(0, datagrams.in)), to: &out)
            key("datagramsOut")
            appendDecimal(UInt64(max(0, datagrams.out)), to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    private static func appendText(_ r: ConnectionRecord, to out: inout [UInt8]) {
        let space = UInt8(ascii: " ")
        let dash = UInt8(ascii: "-")
        appendTime(r.start, to: &out)
        out.append(space)
        appendDecimal(UInt64(max(0, r.durationMs)), to: &out)
        out.append(space)
        if let client = r.client { client.append(to: &out) } else { out.append(dash) }
        out.append(space)
        appendAddress(r.listen, to: &out)
        out.append(space)
        if let service = r.service { appendEscaped(service, to: &out) } else { out.append(dash) }
        out.append(space)
        if let endpoint = r.endpoint { appendAddress(endpoint, to: &out) } else { out.append(dash) }
        out.append(space)
        appendDecimal(UInt64(max(0, r.attempts)), to: &out)
        out.append(space)
        appendDecimal(UInt64(max(0, r.queueMs)), to: &out)
        out.append(space)
        if let connect = r.connectMs { appendDecimal(UInt64(max(0, connect)), to: &out) } else { out.append(dash) }
        out.append(space)
        appendDecimal(r.bytesIn, to: &out)
        out.append(space)
        appendDecimal(r.bytesOut, to: &out)
        out.append(space)
        out.append(contentsOf: r.end.logName.utf8)
        out.append(space)
        appendDecimal(UInt64(max(0, r.worker)), to: &out)
        if let datagrams = r.datagrams {
            out.append(space)
            appendDecimal(UInt64(max(0, datagrams.in)), to: &out)
            out.append(space)
            appendDecimal(UInt64(max(0, datagrams.out)), to: &out)
        }
    }

    private static func appendLiteral(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// `host:port`, IPv6 in brackets (`SocketAddress.description` without making a string).
    static func appendAddress(_ address: SocketAddress, to out: inout [UInt8]) {
        if address.family == .ipv6 { out.append(UInt8(ascii: "[")) }
        out.append(contentsOf: address.host.utf8)
        if address.family == .ipv6 { out.append(UInt8(ascii: "]")) }
        out.append(UInt8(ascii: ":"))
        appendDecimal(UInt64(address.port), to: &out)
    }

    /// Text inside a JSON string (and a text field): quotes, backslashes and control
    /// characters escaped. Service names are letters, digits, '-' and '_' already.
    static func appendEscaped(_ text: String, to out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0xf))
            default:
                out.append(byte)
            }
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[index]) }
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-27T10:00:00.123Z`.
    static func appendTime(_ seconds: Double, to out: inout [UInt8]) {
        let whole = seconds.rounded(.down)
        var time = time_t(whole)
        let ms = min(999, max(0, Int(((seconds - whole) * 1000).rounded(.down))))
        var parts = tm()
        gmtime_r(&time, &parts)
        func field(_ value: Int, width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8((rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        field(Int(parts.tm_year) + 1900, width: 4)
        out.append(UInt8(ascii: "-"))
        field(Int(parts.tm_mon) + 1, width: 2)
        out.append(UInt8(ascii: "-"))
        field(Int(parts.tm_mday), width: 2)
        out.append(UInt8(ascii: "T"))
        field(Int(parts.tm_hour), width: 2)
        out.append(UInt8(ascii: ":"))
        field(Int(parts.tm_min), width: 2)
        out.append(UInt8(ascii: ":"))
        field(Int(parts.tm_sec), width: 2)
        out.append(UInt8(ascii: "."))
        field(ms, width: 3)
        out.append(UInt8(ascii: "Z"))
    }
}
