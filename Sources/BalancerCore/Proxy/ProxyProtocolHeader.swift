/// PROXY protocol headers (as HAProxy specifies them), sent to an endpoint before any
/// client byte so that it learns the client's address.
public enum ProxyProtocolVersion: String, Sendable, Equatable, CaseIterable {
    case off, v1, v2
}

public enum ProxyProtocolHeader {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The header for a client connection from `source` to `destination`. Addresses of two
    /// families (not possible for one TCP connection) give the UNKNOWN / LOCAL form.
    public static func proxied(_ version: ProxyProtocolVersion, source: SocketAddress, destination: SocketAddress) -> [UInt8] {
        switch version {
        case .off:
            return []
        case .v1:
            guard source.family == destination.family else { return Array("PROXY UNKNOWN\r\n".utf8) }
            let family = source.family == .ipv4 ? "TCP4" : "TCP6"
            return Array("PROXY \(family) \(source.host) \(destination.host) \(source.port) \(destination.port)\r\n".utf8)
        case .v2:
            guard source.family == destination.family,
                  let from = source.addressBytes, let to = destination.addressBytes else { return local(.v2) }
            var header = v2Signature
            header.append(0x21)  // version 2, PROXY
            header.append(source.family == .ipv4 ? 0x11 : 0x21)  // TCP over IPv4 / IPv6
            let length = UInt16(from.count + to.count + 4)
            header.append(UInt8(length >> 8))
            header.append(UInt8(length & 0xff))
            header += from
            header += to
            header += [UInt8(source.port >> 8), UInt8(source.port & 0xff), UInt8(destination.port >> 8), UInt8(destination.port & 0xff)]
            return header
        }
    }

    /// The header of a connection made by balancerd itself (health checks).
    public static func local(_ version: ProxyProtocolVersion) -> [UInt8] {
        switch version {
        case .off: return []
        case .v1: return Array("PROXY UNKNOWN\r\n".utf8)
        case .v2: return v2Signature + [0x20, 0x00, 0x00, 0x00]
        }
    }
}
