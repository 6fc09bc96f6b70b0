import Foundation
import Glibc

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`: collects what the daemon
/// sends, one message per datagram.
final class NotifySocket {
    let path: String
    private let fd: Int32
    private(set) var messages: [String] = []

    init() throws {
        path = Harness.temporaryDirectory().appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw HarnessError("bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Receives datagrams until one satisfies `match` or `timeout` seconds pass; returns it.
    @discardableResult
    func waitFor(timeout: Double, _ match: (String) -> Bool) -> String? {
        if let found = messages.first(where: match) { return found }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { continue }
            let message = String(decoding: buffer[0..<n], as: UTF8.self)
            messages.append(message)
            if match(message) { return message }
        }
        return nil
    }

    /// The first line of each message received so far (READY=1, RELOADING=1, …).
    var kinds: [String] { messages.map { String($0.split(separator: "\n").first ?? "") } }
}
