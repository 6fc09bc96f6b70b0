import CEv
import Glibc

/// The UDP socket calls, each through the `syscall` doorway. Every socket is non-blocking
/// and close-on-exec from birth.
public enum DatagramSocket {
    /// A UDP socket bound to `address` for a service to receive on. On a wildcard address
    /// it asks for each datagram's local address (IP_PKTINFO / IPV6_RECVPKTINFO), so that
    /// a reply leaves from the address the client sent to.
    public static func bound(to address: SocketAddress, reusePort: Bool = false) throws(SystemError) -> Int32 {
        let fd = try Socket.bound(to: address, reusePort: reusePort, datagram: true)
        do throws(SystemError) {
            if isWildcard(address) {
                if address.family == .ipv4 {
                    try Socket.setOption(fd, Int32(IPPROTO_IP), CEV_IP_PKTINFO, 1, "setsockopt(IP_PKTINFO)")
                } else {
                    try Socket.setOption(fd, Int32(IPPROTO_IPV6), CEV_IPV6_RECVPKTINFO, 1, "setsockopt(IPV6_RECVPKTINFO)")
                }
            }
            // Room for bursts: the kernel drops what does not fit, as it would anyway.
            try? Socket.setOption(fd, SOL_SOCKET, SO_RCVBUF, 4 << 20, "setsockopt(SO_RCVBUF)")
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Binds a throwaway UDP socket to `address` without SO_REUSEPORT, and closes it.
    public static func checkBindable(_ address: SocketAddress) throws(SystemError) {
        Glibc.close(try bound(to: address))
    }

    /// A UDP socket connected to `endpoint`: the kernel filters its replies, and an ICMP
    /// "port unreachable" shows as ECONNREFUSED on its next call.
    public static func connected(to endpoint: SocketAddress) throws(SystemError) -> Int32 {
        let fd = try Socket.open(family: endpoint.family, datagram: true)
        let rc = endpoint.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc < 0 {
            let code = errno
            Glibc.close(fd)
            throw SystemError(errno: code, operation: "connect udp \(endpoint)")
        }
        return fd
    }

    /// Sends one datagram on a connected socket.
    @inline(__always)
    public static func send(_ fd: Int32, _ payload: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT)) }
    }

    public static func close(_ fd: Int32) {
        Glibc.close(fd)
    }

    public static func isWildcard(_ address: SocketAddress) -> Bool {
        address.host == "0.0.0.0" || address.host == "::"
    }
}
