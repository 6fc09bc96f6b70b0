import Glibc

/// systemd's notify protocol: one `AF_UNIX` datagram to `$NOTIFY_SOCKET` per message
/// (a leading `@` names an abstract socket). Does nothing when the variable is not set.
public struct SystemdNotifier {
    private let path: String?

    public init(environment path: String? = getenv("NOTIFY_SOCKET").map { String(cString: $0) }) {
        self.path = (path?.isEmpty ?? true) ? nil : path
    }

    public var isEnabled: Bool { path != nil }

    /// Sends `message` (such as `READY=1`, or several lines at once).
    public func notify(_ message: String) {
        guard let path else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}
