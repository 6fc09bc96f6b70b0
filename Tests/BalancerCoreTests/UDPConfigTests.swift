import Testing
@testable import BalancerCore

/// The configuration of UDP services: `protocol`, `sessionTimeout`, and the keys that do
/// not apply to one protocol or the other.
@Suite struct UDPConfigTests {
    @Test func parse_udpService_readsProtocolAndSessionTimeout_andIgnoresInheritedTCPKeys() throws {
        let config = try ConfigFixture.parse("""
        defaults: {proxyProtocol: v2, queue: {size: 10}, sessionTimeout: 10s}
        services:
          - {name: dns, listen: 0.0.0.0:30053, protocol: udp, endpoints: [127.0.0.1:5353]}
          - {name: web, listen: 0.0.0.0:30053, endpoints: [127.0.0.1:8080]}
        """)
        let dns = config.services[0]
        #expect(dns.transport == .udp)
        #expect(dns.sessionTimeout == 10)
        #expect(dns.proxyProtocol == .off)
        #expect(dns.queue == nil)
        #expect(config.services[1].transport == .tcp)
        #expect(config.services[1].proxyProtocol == .v2)
    }

    @Test func error_whenAServiceSetsAKeyOfTheOtherProtocol_namesTheKey() {
        let found = ConfigFixture.errors("""
        services:
          - {name: dns, listen: 127.0.0.1:30053, protocol: udp, proxyProtocol: v1, queue: {}, idleTimeout: 1m, endpoints: [127.0.0.1:5353]}
          - {name: web, listen: 127.0.0.1:30080, sessionTimeout: 5s, endpoints: [127.0.0.1:8080]}
          - {name: bad, listen: 127.0.0.1:30081, protocol: sctp, endpoints: [127.0.0.1:8080]}
        """)
        #expect(Set(found.map(\.key)) == ["services[0].proxyProtocol", "services[0].queue", "services[0].idleTimeout",
                                          "services[1].sessionTimeout", "services[2].protocol"])
        #expect(found.first { $0.key == "services[0].proxyProtocol" }?.message == "does not apply to a UDP service")
    }

    @Test func error_whenTwoUDPServicesShareAnAddress() {
        let found = ConfigFixture.errors("""
        services:
          - {name: a, listen: 127.0.0.1:30053, protocol: udp, endpoints: [127.0.0.1:5353]}
          - {name: b, listen: 127.0.0.1:30053, protocol: udp, endpoints: [127.0.0.1:5354]}
        """)
        #expect(found.map(\.key) == ["services[1].listen"])
    }
}
