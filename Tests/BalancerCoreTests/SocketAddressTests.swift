import Testing
import BalancerCore

@Suite struct SocketAddressTests {
    @Test(arguments: ["127.0.0.1:8081", "10.1.2.3:1", "[::1]:443", "[2001:db8::5]:65535"])
    func sockaddr_roundTripsThroughTheKernelForm(text: String) throws {
        let parts = try #require(SocketAddress.split(text))
        let address = try #require(SocketAddress.numeric(host: parts.host, port: UInt16(parts.port)!))
        let back = address.withSockaddr { pointer, _ in SocketAddress.from(sockaddr: pointer) }
        #expect(back == address)
        #expect(back?.description == text)
    }

    @Test func equality_dependsOnFamilyHostAndPortOnly() {
        let a = SocketAddress(family: .ipv4, host: "127.0.0.1", port: 1)
        #expect(a == SocketAddress(family: .ipv4, host: "127.0.0.1", port: 1))
        #expect(a != SocketAddress(family: .ipv4, host: "127.0.0.2", port: 1))
        #expect(Set([a, SocketAddress(family: .ipv4, host: "127.0.0.1", port: 1)]).count == 1)
    }
}
