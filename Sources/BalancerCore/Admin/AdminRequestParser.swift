import CHTTPParser

/// One HTTP/1.1 request read from the admin port.
public struct AdminRequest: Sendable, Equatable {
    public var method: String
    /// The path, without a query string.
    public var path: String
    public var keepAlive: Bool
    /// The headers the routes need (nil when absent): `Content-Type`, `Origin`, `Authorization`.
    public var contentType: String?
    public var origin: String?
    public var authorization: String?
    /// The body, within the request's 8 KiB.
    public var body: [UInt8]

    public init(method: String, path: String, keepAlive: Bool, contentType: String? = nil, origin: String? = nil,
                authorization: String? = nil, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.keepAlive = keepAlive
        self.contentType = contentType
        self.origin = origin
        self.authorization = authorization
        self.body = body
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
    /// The header being read (http-parser may give a name or value in several pieces).
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var readingValue = false
    private var headers: [String: String] = [:]
    private var body: [UInt8] = []
    /// The headers kept, by lowercased name.
    static let keptHeaders: Set<String> = ["content-type", "origin", "authorization"]
    private var complete = false
    private var requestBytes = 0

    public init() {
        http_parser_settings_init(&settings)
        settings.on_url = { parser, at, length in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            at!.withMemoryRebound(to: UInt8.self, capacity: length) { me.url.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
            return 0
        }
        settings.on_header_field = { parser, at, length in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            if me.readingValue { me.endHeader() }
            me.field.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
            return 0
        }
        settings.on_header_value = { parser, at, length in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            me.readingValue = true
            me.value.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
            return 0
        }
        settings.on_headers_complete = { parser in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            if me.readingValue { me.endHeader() }
            return 0
        }
        settings.on_body = { parser, at, length in
            let me = Unmanaged<AdminRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
            // Past the limit the request is refused anyway (431): keep no more than that.
            if me.body.count + length <= AdminRequestParser.maxRequestBytes {
                me.body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
            }
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
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        readingValue = false
        headers.removeAll()
        body.removeAll(keepingCapacity: true)
        complete = false
        requestBytes = 0
    }

    /// One header read whole: kept when the routes need it (the first of repeated ones).
    private func endHeader() {
        let name = String(decoding: field, as: UTF8.self).lowercased()
        if Self.keptHeaders.contains(name), headers[name] == nil {
            headers[name] = String(decoding: value, as: UTF8.self)
        }
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        readingValue = false
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
            let request = AdminRequest(method: method, path: path, keepAlive: keepAlive, contentType: headers["content-type"],
                                       origin: headers["origin"], authorization: headers["authorization"], body: body)
            return .request(request, consumed: consumed)
        }
        let code = http_errno(rawValue: parser.http_errno)
        if code != HPE_OK {
            return .malformed(String(cString: http_errno_description(code)))
        }
        if requestBytes > Self.maxRequestBytes { return .tooLarge }
        return .needMore
    }
}
