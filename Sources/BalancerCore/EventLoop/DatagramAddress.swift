import Glibc

/// A datagram's peer (or local) address in binary form: hashable and copied without
/// allocating, so that the per-datagram path never builds text. `SocketAddress` (which
/// carries text) is made from it once per session.
public struct DatagramAddress: Hashable, Sendable {
    public let isIPv6: Bool
    /// The address in network byte order: IPv4 in the first 4 bytes of `high`.
    let high: UInt64
    let low: UInt64
    public let port: UInt16
    let scope: UInt32

    /// Reads a kernel `sockaddr` (AF_INET or AF_INET6); nil for any other family.
    public init?(sockaddr address: UnsafeRawPointer) {
        switch Int32(address.load(as: sockaddr.self).sa_family) {
        case AF_INET:
            let sin = address.load(as: sockaddr_in.self)
            isIPv6 = false
            high = UInt64(sin.sin_addr.s_addr)
            low = 0
            port = UInt16(bigEndian: sin.sin_port)
            scope = 0
        case AF_INET6:
            let sin6 = address.load(as: sockaddr_in6.self)
            isIPv6 = true
            var bytes = sin6.sin6_addr
            (high, low) = withUnsafeBytes(of: &bytes) { ($0.load(fromByteOffset: 0, as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self)) }
            port = UInt16(bigEndian: sin6.sin6_port)
            scope = sin6.sin6_scope_id
        default:
            return nil
        }
    }

    init(ipv4 address: in_addr, port: UInt16 = 0) {
        isIPv6 = false
        high = UInt64(address.s_addr)
        low = 0
        self.port = port
        scope = 0
    }

    init(ipv6 address: in6_addr, port: UInt16 = 0) {
        isIPv6 = true
        var bytes = address
        (high, low) = withUnsafeBytes(of: &bytes) { ($0.load(fromByteOffset: 0, as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self)) }
        self.port = port
        scope = 0
    }

    var ipv4: in_addr { in_addr(s_addr: UInt32(truncatingIfNeeded: high)) }

    var ipv6: in6_addr {
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            raw.storeBytes(of: high, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low, toByteOffset: 8, as: UInt64.self)
        }
        return address
    }

    /// Writes the address as a kernel `sockaddr` into `storage`; returns its length.
    func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        if isIPv6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_addr = ipv6
            sin6.sin6_scope_id = scope
            UnsafeMutableRawPointer(storage).storeBytes(of: sin6, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr = ipv4
        UnsafeMutableRawPointer(storage).storeBytes(of: sin, as: sockaddr_in.self)
        return socklen_t(MemoryLayout<sockaddr_in>.size)
    }

    /// The address with its text, for logs, stats and source-ip's hash (once per session).
    public var socketAddress: SocketAddress {
        var storage = sockaddr_storage()
        _ = write(to: &storage)
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.from(sockaddr: $0)! }
        }
    }
}
