import Foundation
import Glibc

/// A blocking TCP client on 127.0.0.1 whose every read and write is bounded by a timeout.
/// `@unchecked Sendable`: a test may write from one thread while it reads on another; the
/// two touch only the descriptor, which the kernel serialises.
final class TestClient: @unchecked Sendable {
    let fd: Int32
    private var buffered: [UInt8] = []

    enum ReadError: Error, Equatable { case timedOut, reset, failed(Int32) }

    /// `source`: a local address to connect from (127.0.0.2, 127.0.0.3, … are all loopback).
    /// `ipv6`: connect to [::1] instead of 127.0.0.1.
    init(port: UInt16, timeout: Double = 5, source: String? = nil, ipv6: Bool = false) throws {
        // Close-on-exec: daemons and backends started by tests running alongside must not
        // inherit this socket (it would count against their descriptor budget).
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            // No close here: every stored property is set, so a throw still runs deinit,
            // which closes the descriptor (closing it twice could close another test's).
            if rc != 0 {
                throw HarnessError("bind \(source): \(String(cString: strerror(errno)))")
            }
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            address.sin6_port = port.bigEndian
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if rc != 0 {
            let code = errno
            throw HarnessError("connect to 127.0.0.1:\(port): \(String(cString: strerror(code)))")
        }
    }

    deinit { close(fd) }

    /// The local port this client connected from.
    var localPort: UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        // sin_port and sin6_port sit at the same offset.
        return withUnsafeBytes(of: &storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
    }

    /// The first line (the backend's name) of each of `count` new connections to `port`.
    static func answers(_ port: UInt16, count: Int) throws -> [String] {
        try (0..<count).map { _ in try TestClient(port: port).readLine() }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Whether bytes (or an end) arrive within `seconds`, without reading them.
    func isReadable(within seconds: Double) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, Int32(seconds * 1000)) == 1
    }

    /// The next chunk of bytes; empty at EOF.
    func readChunk() throws(ReadError) -> [UInt8] {
        if !buffered.isEmpty {
            defer { buffered.removeAll() }
            return buffered
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return Array(chunk[0..<n]) }
            switch errno {
            case EINTR: continue
            case EAGAIN: throw .timedOut
            case ECONNRESET: throw .reset
            default: throw .failed(errno)
            }
        }
    }

    /// One line, without its newline.
    func readLine() throws -> String {
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { throw ReadError.timedOut }
            if n < 0 { throw ReadError.failed(errno) }
            if n == 0 { throw HarnessError("EOF before a full line (had '\(String(decoding: buffered, as: UTF8.self))')") }
            buffered.append(contentsOf: chunk[0..<n])
        }
    }

    /// Everything until the peer closes (EOF), or throws if that takes longer than the timeout.
    func readToEnd() throws -> [UInt8] {
        var all = buffered
        buffered.removeAll()
        while true {
            let chunk = try readChunk()
            if chunk.isEmpty { return all }
            all.append(contentsOf: chunk)
        }
    }

    /// Everything until EOF, read as a slow reader does: a pause after each chunk, and
    /// `after` called with the count so far (for a test that acts mid-transfer).
    func readToEnd(pausingMicroseconds pause: UInt32, after: (Int) throws -> Void = { _ in }) throws -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let chunk = try readChunk()
            if chunk.isEmpty { return all }
            all += chunk
            usleep(pause)
            try after(all.count)
        }
    }

    /// How the connection ended: `nil` if it is still open after the timeout (no EOF).
    func waitForClose() -> String? {
        do {
            _ = try readToEnd()
            return "eof"
        } catch let error as ReadError {
            return error == .timedOut ? nil : "reset"
        } catch {
            return "error"
        }
    }
}
