/// `healthCheck.type`: what a check says to an endpoint.
public enum HealthCheckType: String, Sendable, Equatable, CaseIterable {
    case tcp, http
    case sendExpect = "send-expect"
    case redis, postgres, mysql, tls
}

/// A check's exchange as configured: its type with that type's keys.
public enum HealthCheckKind: Sendable, Equatable {
    /// A connect alone (and the PROXY header, where the service sends one).
    case tcp
    case http(HTTPCheck)
    /// `send` (may be empty: a banner is read), then an answer that starts with `expect`
    /// (may be empty: sending is enough).
    case sendExpect(send: [UInt8], expect: [UInt8])
    case redis, postgres, mysql
    case tls(serverName: String?)

    public var type: HealthCheckType {
        switch self {
        case .tcp: .tcp
        case .http: .http
        case .sendExpect: .sendExpect
        case .redis: .redis
        case .postgres: .postgres
        case .mysql: .mysql
        case .tls: .tls
        }
    }

    /// A check of `type` with its keys at their defaults.
    public init(defaultFor type: HealthCheckType) {
        switch type {
        case .tcp: self = .tcp
        case .http: self = .http(HTTPCheck())
        case .sendExpect: self = .sendExpect(send: [], expect: [])
        case .redis: self = .redis
        case .postgres: self = .postgres
        case .mysql: self = .mysql
        case .tls: self = .tls(serverName: nil)
        }
    }

    /// The keys each type takes besides interval, timeout, rise, fall, type and port.
    public static func keys(of type: HealthCheckType) -> [String] {
        switch type {
        case .http: ["path", "host", "expectStatus", "expectBody"]
        case .sendExpect: ["send", "sendHex", "expect", "expectHex"]
        case .tls: ["serverName"]
        case .tcp, .redis, .postgres, .mysql: []
        }
    }

    /// Every type-specific key, for the list of allowed keys.
    public static let allKeys: [String] = HealthCheckType.allCases.flatMap(keys(of:))
}

/// `type: http`: a GET with `Connection: close`, passed by a status in `expectStatus` and,
/// when `expectBody` is set, a body that contains it.
public struct HTTPCheck: Sendable, Equatable {
    public var path = "/"
    /// The `Host` header; nil: the endpoint's address.
    public var host: String?
    public var expectStatus: [ClosedRange<Int>] = [200...399]
    public var expectBody: String?

    public init() {}
}

/// The text forms of the check keys, read into values; each returns the error to report.
public enum HealthCheckText {
    /// `send` / `expect`: text in which `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` stand for
    /// their bytes (a double-quoted YAML string has already turned them into bytes).
    public static func escaped(_ text: String) -> Result<[UInt8], CheckTextError> {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                continue
            }
            switch bytes.popFirst() {
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "0"): out.append(0)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "x"):
                guard bytes.count >= 2, let value = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else {
                    return .failure(CheckTextError("\\x must be followed by two hex digits"))
                }
                out.append(value)
                bytes = bytes.dropFirst(2)
            case let other?:
                return .failure(CheckTextError("unknown escape '\\\(Character(Unicode.Scalar(other)))' (use \\r, \\n, \\t, \\0, \\\\ or \\xHH)"))
            case nil:
                return .failure(CheckTextError("a trailing '\\' escapes nothing (write \\\\ for a backslash)"))
            }
        }
        return .success(out)
    }

    /// `sendHex` / `expectHex`: pairs of hex digits, spaces between bytes allowed.
    public static func hex(_ text: String) -> Result<[UInt8], CheckTextError> {
        let digits = text.filter { $0 != " " }
        guard !digits.isEmpty, digits.count % 2 == 0, digits.allSatisfy(\.isHexDigit) else {
            return .failure(CheckTextError("'\(text)' is not hex (pairs of digits 0-9, a-f, such as 2a0d0a)"))
        }
        var out: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            out.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        return .success(out)
    }

    /// One item of `expectStatus`: a status (`200`) or a range (`200-299`), within 100-599.
    public static func statusRange(_ text: String) -> Result<ClosedRange<Int>, CheckTextError> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmed(" ") }
        let numbers = parts.compactMap { Int($0) }
        guard (1...2).contains(parts.count), numbers.count == parts.count else {
            return .failure(CheckTextError("'\(text)' is not a status or a range of statuses (such as 200 or 200-299)"))
        }
        guard numbers.allSatisfy({ (100...599).contains($0) }) else {
            return .failure(CheckTextError("'\(text)': a status is from 100 to 599"))
        }
        guard numbers[0] <= numbers[numbers.count - 1] else {
            return .failure(CheckTextError("'\(text)': the range ends before it starts"))
        }
        return .success(numbers[0]...numbers[numbers.count - 1])
    }

    /// `path`: an origin-form request target.
    public static func path(_ text: String) -> Result<String, CheckTextError> {
        guard text.hasPrefix("/"), text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            return .failure(CheckTextError("'\(text)' is not a request path (it starts with / and has no space or control character)"))
        }
        return .success(text)
    }

    /// `host`: a Host header value, `name` or `name:port`.
    public static func host(_ text: String) -> Result<String, CheckTextError> {
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != "/" }) else {
            return .failure(CheckTextError("'\(text)' is not a host (such as web.local or web.local:8080)"))
        }
        return .success(text)
    }
}

public struct CheckTextError: Error, Equatable {
    public var message: String
    init(_ message: String) { self.message = message }
}
