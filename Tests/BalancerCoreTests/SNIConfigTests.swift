import Testing
@testable import BalancerCore

/// `serverNames` and `helloTimeout`: services sharing one address by TLS server name.
@Suite struct SNIConfigTests {
    @Test func parse_servicesSharingAnAddressByServerName() throws {
        let config = try ConfigFixture.parse("""
        defaults: {helloTimeout: 2s}
        services:
          - {name: shop, listen: 0.0.0.0:30443, serverNames: [shop.example.com, "*.shop.example.com"], endpoints: [127.0.0.1:9443]}
          - {name: api, listen: 0.0.0.0:30443, serverNames: [api.example.com], helloTimeout: 3s, endpoints: [127.0.0.1:9444]}
          - {name: other, listen: 0.0.0.0:30443, serverNames: ["*"], endpoints: [127.0.0.1:9445]}
        """)
        #expect(config.services.map(\.serverNames) == [["shop.example.com", "*.shop.example.com"], ["api.example.com"], ["*"]])
        #expect(config.services.map(\.helloTimeout) == [2, 3, 2])
    }

    @Test func error_whenSharingWithoutServerNames_twoStars_orTheSameNameTwice() {
        let found = ConfigFixture.errors("""
        services:
          - {name: a, listen: 127.0.0.1:30443, serverNames: ["*", a.test], endpoints: [127.0.0.1:1]}
          - {name: b, listen: 127.0.0.1:30443, serverNames: ["*", A.test.], endpoints: [127.0.0.1:2]}
          - {name: c, listen: 127.0.0.1:30443, endpoints: [127.0.0.1:3]}
          - {name: d, listen: 127.0.0.1:30444, serverNames: ["bad name"], endpoints: [127.0.0.1:4]}
          - {name: e, listen: 127.0.0.1:30445, protocol: udp, serverNames: [e.test], endpoints: [127.0.0.1:5]}
        """)
        #expect(found.map(\.key) == ["services[1].serverNames[0]", "services[1].serverNames[1]", "services[2].listen",
                                     "services[3].serverNames[0]", "services[4].serverNames"])
        #expect(found[0].message.contains("already has \"*\""))
        #expect(found[2].message.contains("each has serverNames"))
    }
}
