import Testing
import BalancerCore

@Suite struct ProxyProtocolHeaderTests {
    let client4 = SocketAddress(family: .ipv4, host: "192.168.0.1", port: 56324)
    let local4 = SocketAddress(family: .ipv4, host: "192.168.0.11", port: 443)

    @Test func v1_forIPv4_isTheSpecsText() {
        let header = ProxyProtocolHeader.proxied(.v1, source: client4, destination: local4)
        #expect(String(decoding: header, as: UTF8.self) == "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
    }

    @Test func v1_forIPv6_usesTCP6() {
        let source = SocketAddress(family: .ipv6, host: "::1", port: 1000)
        let destination = SocketAddress(family: .ipv6, host: "2001:db8::5", port: 80)
        let header = ProxyProtocolHeader.proxied(.v1, source: source, destination: destination)
        #expect(String(decoding: header, as: UTF8.self) == "PROXY TCP6 ::1 2001:db8::5 1000 80\r\n")
    }

    @Test func v2_forIPv4_isSignatureCommandFamilyLengthAddressesPorts() {
        let header = ProxyProtocolHeader.proxied(.v2, source: client4, destination: local4)
        let expected: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
                                 0x21, 0x11, 0x00, 0x0C,
                                 192, 168, 0, 1, 192, 168, 0, 11,
                                 0xDC, 0x04, 0x01, 0xBB]
        #expect(header == expected)
    }

    @Test func v2_forIPv6_carries36AddressBytes() {
        let source = SocketAddress(family: .ipv6, host: "::1", port: 1)
        let destination = SocketAddress(family: .ipv6, host: "::2", port: 2)
        let header = ProxyProtocolHeader.proxied(.v2, source: source, destination: destination)
        #expect(header.count == 16 + 36)
        #expect(Array(header[12..<16]) == [0x21, 0x21, 0x00, 0x24])
        #expect(header[16 + 15] == 1 && header[32 + 15] == 2)
        #expect(Array(header.suffix(4)) == [0, 1, 0, 2])
    }

    @Test func local_isV2LocalOrV1Unknown() {
        #expect(ProxyProtocolHeader.local(.v2) == [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00])
        #expect(ProxyProtocolHeader.local(.v1) == Array("PROXY UNKNOWN\r\n".utf8))
        #expect(ProxyProtocolHeader.local(.off).isEmpty)
    }
}
