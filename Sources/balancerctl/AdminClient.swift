import Foundation
import Glibc

/// A small blocking HTTP/1.1 client for the admin port: one request per connection
/// (`Connection: close`), read to the end. Enough for a command-line tool; the daemon's
/// data path never uses it.
struct AdminClient {
    /// `HOST:PORT` (a name, an IPv4 address or `[IPv6]`).
    var host: String
    var port: String
    var token: String?
    /// For connecting, sending and each read.
    var timeout: Double = 5

    struct Response {
        var status: Int
        var body: String
    }

    enum Failure: Error, CustomStringConvertible {
        case badAddress(String)
        case unreachable(String, String)
        case badAnswer(String)

        var description: String {
            switch self {
            case .badAddress(let text): "--admin \(text): expected HOST:PORT"
            case .unreachable(let address, let reason): "cannot reach the admin port \(address): \(reason)"
            case .badAnswer(let reason): "the admin port's answer is not HTTP: \(reason)"
            }
        }
    }

    init(address: String, token: String?) throws(Failure) {
        let host: Substring
        let port: Substring
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            host = address[address.index(after: address.startIndex)..<close]
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .badAddress(address) }
            port = rest.dropFirst()
        } else if let colon = address.lastIndex(of: ":") {
            host = address[..<colon]
            port = address[address.index(after: colon)...]
        } else {
            throw .badAddress(address)
        }
        guard !host.isEmpty, let number = UInt16(port), number > 0 else { throw .badAddress(address) }
        self.host = String(host)
        self.port = String(port)
        self.token = token
    }

    var displayAddress: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func request(_ method: String, _ path: String, json body: String? = nil) throws(Failure) -> Response {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(displayAddress)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        let payload = Array((body ?? "").utf8)
        if body != nil { head += "Content-Type: application/json\r\nContent-Length: \(payload.count)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + payload
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw .unreachable(displayAddress, String(cString: strerror(errno))) }
            sent += n
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw .unreachable(displayAddress, n < 0 && errno == EAGAIN ? "no answer within \(Int(timeout)) s" : String(cString: strerror(errno))) }
            answer += chunk[0..<n]
        }
        return try Self.parse(answer)
    }

    private func connect() throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, port, &hints, &list)
        guard code == 0, let first = list else {
            throw .unreachable(displayAddress, String(cString: gai_strerror(code)))
        }
        defer { freeaddrinfo(list) }
        var reason = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            // On Linux the send timeout bounds connect too.
            var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            reason = String(cString: strerror(errno))
            close(fd)
        }
        throw .unreachable(displayAddress, reason)
    }

    static func parse(_ bytes: [UInt8]) throws(Failure) -> Response {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw .badAnswer("no end of headers") }
        let statusLine = text[..<split.lowerBound].prefix { $0 != "\r" }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw .badAnswer("status line '\(statusLine)'")
        }
        return Response(status: status, body: String(text[split.upperBound...]))
    }
}
