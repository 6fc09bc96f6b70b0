/// `type: http`: `GET path` over HTTP/1.1 with `Connection: close`. Passes when the status
/// is in `expectStatus` and, with `expectBody`, the body (the part of it within the answer
/// limit, chunked or not) contains that text.
public struct HTTPCheckExchange: CheckExchange {
    public let request: [UInt8]
    let check: HTTPCheck
    let body: [UInt8]

    /// `host` is the endpoint's address, the Host header when `check.host` is nil.
    public init(check: HTTPCheck, host: String) {
        self.check = check
        body = Array((check.expectBody ?? "").utf8)
        let text = "GET \(check.path) HTTP/1.1\r\nHost: \(check.host ?? host)\r\nUser-Agent: balancerd-health-check\r\n"
            + "Accept: */*\r\nConnection: close\r\n\r\n"
        request = Array(text.utf8)
    }

    public mutating func judge(_ answer: ArraySlice<UInt8>, ended: Bool) -> CheckVerdict {
        let crlf = Array("\r\n".utf8)
        guard let lineEnd = answer.firstIndex(of: crlf) else {
            return ended ? HealthCheckExchange.endedEarly(answer) : .more
        }
        guard let status = Self.status(answer[..<lineEnd]) else { return .fail("unexpected answer") }
        guard check.expectStatus.contains(where: { $0.contains(status) }) else { return .fail("status \(status)") }
        guard !body.isEmpty else { return .pass("status \(status)") }

        guard let headerEnd = answer.firstIndex(of: crlf + crlf) else { return ended ? .fail("body mismatch") : .more }
        let headers = Self.headers(answer[min(lineEnd + 2, headerEnd)..<headerEnd])
        let raw = answer[(headerEnd + 4)...]
        var content: ArraySlice<UInt8>
        var complete: Bool
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            (content, complete) = Self.dechunk(raw)
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            content = raw.prefix(length)
            complete = raw.count >= length
        } else {
            content = raw
            complete = false
        }
        if content.contains(body) { return .pass("status \(status)") }
        return complete || ended ? .fail("body mismatch") : .more
    }

    /// The status of a line `HTTP/1.x NNN reason`.
    static func status(_ line: ArraySlice<UInt8>) -> Int? {
        let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].starts(with: "HTTP/1.".utf8), parts[1].count == 3,
              let status = Int(String(decoding: parts[1], as: UTF8.self)), (100...599).contains(status) else { return nil }
        return status
    }

    /// Header names (lowercased) and values; a repeated header keeps its last value.
    static func headers(_ block: ArraySlice<UInt8>) -> [String: String] {
        var out: [String: String] = [:]
        for line in String(decoding: block, as: UTF8.self).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            out[name] = line[line.index(after: colon)...].trimmed()
        }
        return out
    }

    /// The content of a chunked body so far, and whether its last chunk has come.
    static func dechunk(_ raw: ArraySlice<UInt8>) -> (ArraySlice<UInt8>, Bool) {
        var content: [UInt8] = []
        var rest = raw
        while let lineEnd = rest.firstIndex(of: Array("\r\n".utf8)) {
            let sizeText = String(decoding: rest[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmed(), radix: 16) else { break }
            if size == 0 { return (content[...], true) }
            let data = rest[(lineEnd + 2)...]
            content += data.prefix(size)
            guard data.count >= size + 2 else { break }
            rest = data.dropFirst(size + 2)
        }
        return (content[...], false)
    }
}
