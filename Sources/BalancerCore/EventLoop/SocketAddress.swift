import CEv  // for SOCK_STREAM, which Glibc alone does not export here
import Glibc

/// An IPv4 or IPv6 socket address, with the `host:port` / `[host]:port` text operators write.
public struct SocketAddress: Equatable, Hashable, Comparable, CustomStringConvertible, Sendable {
    public enum Family: Sendable { case ipv4, ipv6 }

    public let family: Family
    /// The numeric host, without brackets.
    public let host: String
    public let port: UInt16
    /// The host in network byte order (IPv4 in the first 4 bytes), parsed once here so
    /// that a connect does not parse text again.
    private let binary: (UInt64, UInt64)

    public init(family: Family, host: String, port: UInt16) {
        self.family = family
        self.host = host
        self.port = port
        var bytes = in6_addr()
        _ = inet_pton(family == .ipv4 ? AF_INET : AF_INET6, host, &bytes)
        binary = withUnsafeBytes(of: &bytes) { ($0.load(fromByteOffset: 0, as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self)) }
    }

    // `binary` is derived from `host`: equality and hashing need only the text form.
    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.family == rhs.family && lhs.host == rhs.host && lhs.port == rhs.port
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(host)
        hasher.combine(port)
    }

    /// The order every instance lists resolved addresses in: IPv4 numerically, then IPv6
    /// numerically, then by port.
    public static func < (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .ipv4 }
        let left = lhs.addressBytes ?? [], right = rhs.addressBytes ?? []
        if left != right { return left.lexicographicallyPrecedes(right) }
        return lhs.port < rhs.port
    }

    public var description: String {
        family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public var isLoopback: Bool {
        switch family {
        case .ipv4: return host.hasPrefix("127.")
        case .ipv6: return host == "::1"
        }
    }

    /// The address in network byte order (4 or 16 bytes).
    public var addressBytes: [UInt8]? {
        switch family {
        case .ipv4:
            var v4 = in_addr()
            guard inet_pton(AF_INET, host, &v4) == 1 else { return nil }
            return withUnsafeBytes(of: &v4) { Array($0) }
        case .ipv6:
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, host, &v6) == 1 else { return nil }
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
    }

    /// Splits `host:port` or `[v6]:port` into its two parts; nil when the shape is wrong.
    public static func split(_ text: String) -> (host: String, port: String, bracketed: Bool)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            return (host, String(rest.dropFirst()), true)
        }
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = String(text[..<colon])
        if host.utf8.contains(UInt8(ascii: ":")) { return nil }  // bare IPv6 needs brackets
        return (host, String(text[text.index(after: colon)...]), false)
    }

    /// The address for a numeric host, or nil if `host` is not an IP literal.
    public static func numeric(host: String, port: UInt16) -> SocketAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return SocketAddress(family: .ipv4, host: format(v4), port: port)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return SocketAddress(family: .ipv6, host: format(v6), port: port)
        }
        return nil
    }

    /// Reads a kernel `sockaddr` (as filled by accept or getsockname).
    public static func from(sockaddr address: UnsafePointer<sockaddr>, port overridePort: UInt16? = nil) -> SocketAddress? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                SocketAddress(family: .ipv4, host: format(sin.pointee.sin_addr),
                              port: overridePort ?? UInt16(bigEndian: sin.pointee.sin_port))
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                SocketAddress(family: .ipv6, host: format(sin6.pointee.sin6_addr),
                              port: overridePort ?? UInt16(bigEndian: sin6.pointee.sin6_port))
            }
        default:
            return nil
        }
    }

    /// Calls `body` with this address as a kernel `sockaddr`.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch family {
        case .ipv4:
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeBytes(of: binary.0) { first in
                withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: first[0..<4])) }
            }
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6:
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                raw.storeBytes(of: binary.0, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: binary.1, toByteOffset: 8, as: UInt64.self)
            }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    private static func format(_ addr: in_addr) -> String {
        var a = addr
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    private static func format(_ addr: in6_addr) -> String {
        var a = addr
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
