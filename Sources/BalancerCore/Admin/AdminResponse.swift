/// An HTTP response of the admin port.
public struct AdminResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: String
    /// Extra header lines, such as `Allow: GET`.
    public var headers: [String] = []

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String, headers: [String] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 415: "Unsupported Media Type"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Error"
        }
    }

    /// A JSON error answer: `{"error": message}`.
    static func error(_ status: Int, _ message: String, headers: [String] = []) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", body: "{\"error\":\(StatsRenderer.quote(message))}\n", headers: headers)
    }

    /// The bytes on the wire.
    func serialized(keepAlive: Bool) -> [UInt8] {
        let body = Array(self.body.utf8)
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        head += "Content-Type: \(contentType)\r\n"
        head += "Content-Length: \(body.count)\r\n"
        for line in headers { head += line + "\r\n" }
        head += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}
