import CEv
import Glibc

/// The socket calls the proxy makes, each through the `syscall` doorway.
/// Every socket is non-blocking and close-on-exec from birth.
public enum Socket {
    /// A listening socket bound to `address` (SO_REUSEADDR; IPv6 sockets are IPv6-only so
    /// that `[::]:p` and `0.0.0.0:p` can be two services).
    public static func listen(on address: SocketAddress, backlog: Int32 = 4096, reusePort: Bool = false) throws(SystemError) -> Int32 {
        let fd = try bound(to: address, reusePort: reusePort)
        do throws(SystemError) {
            // Accepted sockets inherit it: one setsockopt per listener, not per connection.
            setNoDelay(fd)
            try syscallChecked("listen \(address)") { Glibc.listen(fd, backlog) }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// A new socket bound to `address`, with the options every listener has (TCP, or UDP
    /// with `datagram`).
    static func bound(to address: SocketAddress, reusePort: Bool, datagram: Bool = false) throws(SystemError) -> Int32 {
        let fd = try open(family: address.family, datagram: datagram)
        do throws(SystemError) {
            // Not for UDP: there it would let two processes bind one port side by side.
            if !datagram { try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)") }
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)") }
            if address.family == .ipv6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, "setsockopt(IPV6_V6ONLY)") }
            let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
            if rc < 0 { throw SystemError(errno: errno, operation: "bind \(datagram ? "udp " : "")\(address)") }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Binds a throwaway socket to `address` without SO_REUSEPORT, and closes it: throws
    /// EADDRINUSE when anyone listens there, even in a SO_REUSEPORT group of their own.
    public static func checkBindable(_ address: SocketAddress) throws(SystemError) {
        Glibc.close(try bound(to: address, reusePort: false))
    }

    /// Makes a socket created elsewhere (handed over by systemd) non-blocking, close-on-exec
    /// and TCP_NODELAY (for the connections it accepts), like the ones made here.
    public static func adopt(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        setNoDelay(fd)
    }

    /// A new non-blocking TCP (or, with `datagram`, UDP) socket.
    public static func open(family: SocketAddress.Family, datagram: Bool = false) throws(SystemError) -> Int32 {
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        let type = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        return try syscallChecked(datagram ? "socket udp" : "socket") {
            Glibc.socket(domain, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
    }

    /// Accepts one pending connection, already non-blocking and close-on-exec.
    @inline(__always)
    public static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        try syscall("accept") {
            cev_accept4(fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
        }
    }

    /// Starts a non-blocking connect. `.done` means connected at once, `.wouldBlock` in progress.
    public static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> IOResult<Void> {
        while true {
            let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
            if rc == 0 { return .done(()) }
            let code = errno
            if code == EINTR { continue }
            if code == EINPROGRESS || code == EAGAIN { return .wouldBlock }
            throw SystemError(errno: code, operation: "connect \(address)")
        }
    }

    /// The result of a finished non-blocking connect: 0, or the errno it failed with.
    public static func pendingError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) < 0 { return errno }
        return value
    }

    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads from a socket: `recv`, which goes straight to the socket layer (`read` passes
    /// through the file layer first, a few percent of a kept-alive request's CPU).
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) throws(SystemError) -> IOResult<Int> {
        try syscall("read") { Glibc.recv(fd, buffer, count, 0) }
    }

    @inline(__always)
    public static func write(_ fd: Int32, from buffer: UnsafeRawPointer, count: Int) throws(SystemError) -> IOResult<Int> {
        try syscall("write") { Glibc.send(fd, buffer, count, Int32(MSG_NOSIGNAL)) }
    }

    /// Passes a FIN on: no more bytes will be written to `fd`.
    public static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    public static func close(_ fd: Int32) {
        Glibc.close(fd)
    }

    /// The address a socket is bound to.
    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        address(fd, getsockname)
    }

    /// The address of a connected socket's peer.
    public static func peerAddress(_ fd: Int32) -> SocketAddress? {
        address(fd, getpeername)
    }

    private static func address(_ fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.from(sockaddr: $0) }
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
        var v = value
        try syscallChecked(what) { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }
}
