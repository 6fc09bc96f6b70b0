import CHTTPParser

/// One HTTP/1.1 request read from the admin port.
public struct AdminRequest: Sendable, Equatable {
    public var method: String
    /// The path, without a query string.
    public var path: String
    public var keepAlive: Bool

    public init(method: String, path: String, keepAlive: Bool) {
        self.method = method
        self.path = path
        self.keepAlive = keepAlive
    }
}

/// Incremental HTTP/1.1 request parsing over Debian's http-parser, with the admin port's
/// 8 KiB limit on a request (request line, headers and any body together).
///
/// Feed bytes as they arrive; each call reports a complete request, a need for more
/// bytes, or an error. Bytes after a complete request (pipelining) are left for the next
/// call, which must follow `reset()`.
public final class AdminRequestParser {
    public static let maxRequestBytes = 8 * 1024

    public enum Outcome: Equatable {
        case needMore
        /// A whole request, and how many of the bytes given it used.
        case request(AdminRequest, consumed: Int)
        /// The request is malformed (400) or too large (431); the connection must close.
        case malformed(String)
        case tooLarge
    }

    private var parser = http_parser()
    private var settings = http_parser_settings()
    private var url: [UInt8] = []
    private var complete = false
    private var requestBytes = 0

    public init() {
        http_parser_settings_init(&settings)
        settings.on_url = { parser, at, length in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            at!.withMemoryRebound(to: UInt8.self, capacity: length) { me.url.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
            return 0
        }
        settings.on_message_complete = { parser in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            me.complete = true
            // Stop here: bytes after this request belong to the next one.
            http_parser_pause(parser, 1)
            return 0
        }
        reset()
    }

    /// Starts on a new request.
    public func reset() {
        http_parser_init(&parser, HTTP_REQUEST)
        parser.data = Unmanaged.passUnretained(self).toOpaque()
        url.removeAll(keepingCapacity: true)
        complete = false
        requestBytes = 0
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard !complete else { return .needMore }
        let consumed = bytes.withMemoryRebound(to: CChar.self) { chars in
            http_parser_execute(&parser, &settings, chars.baseAddress, chars.count)
        }
        requestBytes += consumed
        if complete {
            guard requestBytes <= Self.maxRequestBytes else { return .tooLarge }
            let method = String(cString: http_method_str(http_method(rawValue: parser.method)))
            let target = String(decoding: url, as: UTF8.self)
            let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            let keepAlive = http_should_keep_alive(&parser) != 0
            return .request(AdminRequest(method: method, path: path, keepAlive: keepAlive), consumed: consumed)
        }
        let code = http_errno(rawValue: parser.http_errno)
        if code != HPE_OK {
            return .malformed(String(cString: http_errno_description(code)))
        }
        if requestBytes > Self.maxRequestBytes { return .tooLarge }
        return .needMore
    }
}
