import CEv
import Glibc

/// A local stream socket between two balancerd processes of one user, carrying framed
/// messages with file descriptors attached (`SCM_RIGHTS`): the takeover's transport.
///
/// A frame is a 4-byte body length and a 2-byte descriptor count (both big-endian), then
/// the body; its descriptors travel with its bytes. The kernel hands descriptors over with
/// the first byte of the `sendmsg` that carried them and never later, so a reader that
/// queues them in arrival order finds a frame's descriptors queued by the time the whole
/// frame has arrived.
///
/// Calls block, each bounded by a deadline (monotonic seconds, see `Self.now`): the
/// takeover is a short exchange that must end within its time limit whatever the peer does.
public final class DescriptorChannel {
    /// Descriptors one frame may carry: the kernel's SCM_MAX_FD is 253.
    public static let maxDescriptors = 250
    static let headerSize = 6

    public let fd: Int32
    private var buffer: [UInt8] = []
    private var descriptors: [Int32] = []

    init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        Glibc.close(fd)
        // Received but never claimed by a frame.
        descriptors.forEach { Glibc.close($0) }
    }

    /// Monotonic seconds, for deadlines.
    public static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// A listening socket at `path`, mode 0600 (a stale socket left there is replaced).
    public static func listen(path: String) throws(SystemError) -> Int32 {
        let fd = try syscallChecked("socket unix") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            unlink(path)
            // Created with no permission for group and others from the start: no window in
            // which another user could connect before the chmod.
            let mask = umask(0o177)
            let rc = withAddress(path) { Glibc.bind(fd, $0, $1) }
            let code = errno
            umask(mask)
            if rc != 0 { throw SystemError(errno: code, operation: "bind \(path)") }
            try syscallChecked("chmod \(path)") { chmod(path, 0o600) }
            try syscallChecked("listen \(path)") { Glibc.listen(fd, 4) }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// One waiting connection on `listener`, or nil when none waits.
    public static func accept(_ listener: Int32) throws(SystemError) -> DescriptorChannel? {
        switch try Socket.accept(listener) {
        case .wouldBlock: return nil
        case .done(let fd): return DescriptorChannel(fd: fd)
        }
    }

    /// Connects to the socket at `path`.
    public static func connect(path: String) throws(SystemError) -> DescriptorChannel {
        let fd = try syscallChecked("socket unix") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        // A local connect completes at once or fails (ECONNREFUSED, ENOENT, EAGAIN when the
        // backlog is full).
        let rc = withAddress(path) { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            let code = errno
            Glibc.close(fd)
            throw SystemError(errno: code, operation: "connect \(path)")
        }
        return DescriptorChannel(fd: fd)
    }

    /// The process at the other end: its pid and user, as the kernel recorded them at connect.
    public var peer: (pid: pid_t, uid: uid_t)? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        guard cev_peer_credentials(fd, &pid, &uid) == 0 else { return nil }
        return (pid, uid)
    }

    /// Sends one frame: `body`, with `attached` descriptors (duplicated into the peer; the
    /// caller keeps its own).
    public func send(_ body: [UInt8], attaching attached: [Int32] = [], deadline: Double) throws(SystemError) {
        precondition(attached.count <= Self.maxDescriptors)
        var frame: [UInt8] = []
        frame.reserveCapacity(Self.headerSize + body.count)
        let length = UInt32(body.count)
        frame += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        frame += [UInt8(attached.count >> 8), UInt8(attached.count & 0xff)]
        frame += body
        var sent = 0
        var pending = attached
        while sent < frame.count {
            let result = frame.withUnsafeBytes { bytes in
                Result { () throws(SystemError) in try sendPart(UnsafeRawBufferPointer(rebasing: bytes[sent...]), attaching: pending) }
            }
            switch try result.get() {
            case .done(let n):
                sent += n
                pending = []
            case .wouldBlock:
                try wait(for: Int16(POLLOUT), deadline: deadline)
            }
        }
    }

    private func sendPart(_ bytes: UnsafeRawBufferPointer, attaching attached: [Int32]) throws(SystemError) -> IOResult<Int> {
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        var message = msghdr()
        let space = attached.isEmpty ? 0 : cev_cmsg_space(attached.count * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: max(space, 1), alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        return try withUnsafeMutablePointer(to: &vector) { vectorPointer throws(SystemError) in
            message.msg_iov = vectorPointer
            message.msg_iovlen = 1
            if !attached.isEmpty {
                control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
                message.msg_control = control
                message.msg_controllen = space
                let header = cev_cmsg_firsthdr(&message)!
                header.pointee.cmsg_level = SOL_SOCKET
                header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                header.pointee.cmsg_len = cev_cmsg_len(attached.count * MemoryLayout<Int32>.size)
                attached.withUnsafeBytes { UnsafeMutableRawPointer(cev_cmsg_data(header)!).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            return try syscall("sendmsg") { sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// The next frame: its body and its descriptors (now the caller's to close). Throws
    /// ECONNRESET when the peer closed, ETIMEDOUT at the deadline.
    public func receive(deadline: Double) throws(SystemError) -> (body: [UInt8], descriptors: [Int32]) {
        while true {
            if buffer.count >= Self.headerSize {
                let length = Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
                let count = Int(buffer[4]) << 8 | Int(buffer[5])
                if buffer.count >= Self.headerSize + length {
                    guard descriptors.count >= count else {
                        throw SystemError(errno: EPROTO, operation: "receive: a frame without its descriptors")
                    }
                    let body = Array(buffer[Self.headerSize..<Self.headerSize + length])
                    buffer.removeFirst(Self.headerSize + length)
                    let attached = Array(descriptors.prefix(count))
                    descriptors.removeFirst(count)
                    return (body, attached)
                }
            }
            if try !receivePart() { try wait(for: Int16(POLLIN), deadline: deadline) }
        }
    }

    /// Reads what has arrived; false when nothing had.
    private func receivePart() throws(SystemError) -> Bool {
        let capacity = 256 * 1024
        let data = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { data.deallocate() }
        let space = cev_cmsg_space(Self.maxDescriptors * 4 * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        var vector = iovec(iov_base: data, iov_len: capacity)
        var message = msghdr()
        let result = try withUnsafeMutablePointer(to: &vector) { vectorPointer throws(SystemError) in
            message.msg_iov = vectorPointer
            message.msg_iovlen = 1
            message.msg_control = control
            message.msg_controllen = space
            return try syscall("recvmsg") { recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC)) }
        }
        guard case .done(let n) = result else { return false }
        var header = cev_cmsg_firsthdr(&message)
        while let current = header {
            if current.pointee.cmsg_level == SOL_SOCKET && current.pointee.cmsg_type == Int32(SCM_RIGHTS) {
                let count = (current.pointee.cmsg_len - cev_cmsg_len(0)) / MemoryLayout<Int32>.size
                let base = UnsafeRawPointer(cev_cmsg_data(current)!)
                for index in 0..<count { descriptors.append(base.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)) }
            }
            header = cev_cmsg_nxthdr(&message, current)
        }
        if message.msg_flags & Int32(MSG_CTRUNC) != 0 {
            throw SystemError(errno: EMSGSIZE, operation: "recvmsg: descriptors truncated")
        }
        if n == 0 { throw SystemError(errno: ECONNRESET, operation: "receive: the peer closed the connection") }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n))
        return true
    }

    private func wait(for events: Int16, deadline: Double) throws(SystemError) {
        while true {
            let left = deadline - Self.now
            if left <= 0 { throw SystemError(errno: ETIMEDOUT, operation: "takeover channel") }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&entry, 1, Int32(min(left * 1000, 1000).rounded(.up)))
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw SystemError(errno: errno, operation: "poll") }
        }
    }

    private static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: address.sun_path) - 1))
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
