import Testing
@testable import BalancerCore

/// The configuration keys for endpoints that follow names: `resolvers`, `dns`, names and
/// `srv:` in endpoint lists.
@Suite struct DNSConfigTests {
    private func parse(_ text: String) throws -> Config { try ConfigFixture.parse(text) }
    private func errors(_ text: String) -> [ConfigError] { ConfigFixture.errors(text) }

    @Test func parse_whenNamesSRVAndResolversAreGiven_readsEveryKey() throws {
        let config = try parse("""
        resolvers:
          nameservers: [127.0.0.1:5353, 127.0.0.2, "::1", "[::1]:5300"]
          timeout: 300ms
          attempts: 3
        defaults:
          dns: {refresh: 2s, hold: 10s}
        services:
          - name: web
            listen: 127.0.0.1:30080
            dns: {hold: 0s}
            endpoints:
              - 127.0.0.1:8081
              - Web.Default.svc.cluster.local.:8080
              - srv: _http._tcp.web.default.svc.cluster.local
                weight: 2
                maxConnections: 50
        """)
        let resolvers = try #require(config.resolvers)
        #expect(resolvers.nameservers.map(\.description) == ["127.0.0.1:5353", "127.0.0.2:53", "[::1]:53", "[::1]:5300"])
        #expect(resolvers.timeout == 0.3)
        #expect(resolvers.attempts == 3)
        let service = config.services[0]
        #expect(service.dns == DNSSettings(refresh: 2, hold: 0))
        #expect(service.sources.count == 3)
        #expect(service.endpoints.map(\.name) == ["127.0.0.1:8081"])
        let names = config.dnsNames
        #expect(names.map(\.label) == ["dns:web.default.svc.cluster.local:8080", "srv:_http._tcp.web.default.svc.cluster.local"])
        #expect(names[1].weight == 2)
        #expect(names[1].maxConnections == 50)
        #expect(names[0].settings == DNSSettings(refresh: 2, hold: 0))
    }

    @Test func parse_whenNoResolvers_usesTheSystemsAndDefaultTimings() throws {
        let config = try parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints: [web.test:80]
        """)
        #expect(config.resolvers == nil)
        #expect(config.services[0].dns == DNSSettings(refresh: 5, hold: 30))
    }

    @Test func error_whenDNSKeysAreBad_namesEachKeyAndPosition() {
        let found = errors("""
        resolvers:
          nameservers: [dns.example.com:53]
          attempts: 0
          retries: 2
        defaults:
          dns: {refresh: 0s, ttl: 5s}
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints:
              - bad_name!.test:80
              - srv: "not a name"
              - {address: 127.0.0.1:80, srv: _x._tcp.test}
              - web.test:80
              - WEB.test.:80
        """)
        #expect(found.map(\.key) == [
            "resolvers.retries", "resolvers.nameservers[0]", "resolvers.attempts",
            "defaults.dns.ttl", "defaults.dns.refresh",
            "services[0].endpoints[0]", "services[0].endpoints[1].srv", "services[0].endpoints[2]", "services[0].endpoints[4]",
        ])
        #expect(found.first { $0.key == "resolvers.nameservers[0]" }.map { "\($0.line):\($0.column)" } == "2:17")
        #expect(found.last?.message.contains("listed twice") == true)
    }

    @Test func error_whenListenIsAName_isRejected_butLocalhostIsLoopback() throws {
        let found = errors("""
        services:
          - name: web
            listen: web.test:30080
            endpoints: [127.0.0.1:80]
        """)
        #expect(found.map(\.key) == ["services[0].listen"])
        let config = try parse("""
        services:
          - name: web
            listen: localhost:30080
            endpoints: [127.0.0.1:80]
        """)
        #expect(config.services[0].listen.description == "127.0.0.1:30080")
    }
}
