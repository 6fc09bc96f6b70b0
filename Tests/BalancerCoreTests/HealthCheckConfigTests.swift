import Testing
@testable import BalancerCore

/// `healthCheck.type` and its keys: read, inherited, and rejected with file:line:column.
@Suite struct HealthCheckConfigTests {
    private func parse(_ text: String) throws -> Config { try ConfigFixture.parse(text) }
    private func errors(_ text: String) -> [ConfigError] { ConfigFixture.errors(text) }

    /// One service whose healthCheck is the flow mapping `check`.
    private func service(_ check: String) -> String {
        """
        services:
          - name: web
            listen: 127.0.0.1:30080
            healthCheck: \(check)
            endpoints: [127.0.0.1:8081]
        """
    }

    @Test func parse_whenNoType_isATCPConnectCheck() throws {
        let config = try parse(service("{interval: 1s}"))
        #expect(config.services[0].healthCheck.kind == .tcp)
        #expect(config.services[0].healthCheck.port == nil)
    }

    @Test func parse_httpWithEveryKey_readsThem() throws {
        let config = try parse(service(#"{type: http, path: /ready, host: web.local, expectStatus: ["200-299", 304], expectBody: ok, port: 8086}"#))
        var expected = HTTPCheck()
        expected.path = "/ready"
        expected.host = "web.local"
        expected.expectStatus = [200...299, 304...304]
        expected.expectBody = "ok"
        #expect(config.services[0].healthCheck.kind == .http(expected))
        #expect(config.services[0].healthCheck.port == 8086)
    }

    @Test func parse_httpAlone_hasTheDefaults() throws {
        let config = try parse(service("{type: http}"))
        guard case .http(let http) = config.services[0].healthCheck.kind else {
            Issue.record("expected an http check")
            return
        }
        #expect(http.path == "/" && http.host == nil && http.expectBody == nil)
        #expect(http.expectStatus == [200...399])
        #expect(try parse(service("{type: http, expectStatus: 204}")).services[0].healthCheck.kind.httpStatuses == [204...204])
    }

    @Test func parse_sendExpect_readsEscapesInPlainTextAndBytesInHex() throws {
        let plain = try parse(service(#"{type: send-expect, send: 'HELLO\r\n', expect: OK}"#))
        #expect(plain.services[0].healthCheck.kind == .sendExpect(send: Array("HELLO\r\n".utf8), expect: Array("OK".utf8)))
        // A double-quoted YAML string has its escapes turned into bytes by YAML already.
        let quoted = try parse(service(#"{type: send-expect, send: "HELLO\r\n", expect: "OK"}"#))
        #expect(quoted.services[0].healthCheck.kind == plain.services[0].healthCheck.kind)
        let hex = try parse(service("{type: send-expect, sendHex: 0102ff, expectHex: '2b 4f'}"))
        #expect(hex.services[0].healthCheck.kind == .sendExpect(send: [1, 2, 0xff], expect: [0x2b, 0x4f]))
        let banner = try parse(service("{type: send-expect, expect: SSH-}"))
        #expect(banner.services[0].healthCheck.kind == .sendExpect(send: [], expect: Array("SSH-".utf8)))
    }

    @Test(arguments: [("redis", HealthCheckKind.redis), ("postgres", .postgres), ("mysql", .mysql), ("tls", .tls(serverName: nil)), ("tcp", .tcp)])
    func parse_builtInTypes_needOnlyTheType(type: String, kind: HealthCheckKind) throws {
        #expect(try parse(service("{type: \(type)}")).services[0].healthCheck.kind == kind)
    }

    @Test func parse_tlsWithServerName_readsIt() throws {
        let config = try parse(service("{type: tls, serverName: shop.example.com}"))
        #expect(config.services[0].healthCheck.kind == .tls(serverName: "shop.example.com"))
    }

    @Test func parse_defaultsType_isInherited_andAServiceMayChangeItOrOnlyItsKeys() throws {
        let config = try parse("""
        defaults:
          healthCheck: {type: http, path: /ready}
        services:
          - name: a
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081]
          - name: b
            listen: 127.0.0.1:30081
            healthCheck: {expectBody: up}
            endpoints: [127.0.0.1:8081]
          - name: c
            listen: 127.0.0.1:30082
            healthCheck: {type: redis}
            endpoints: [127.0.0.1:8081]
        """)
        guard case .http(let a) = config.services[0].healthCheck.kind, case .http(let b) = config.services[1].healthCheck.kind else {
            Issue.record("expected http checks")
            return
        }
        #expect(a.path == "/ready" && a.expectBody == nil)
        #expect(b.path == "/ready" && b.expectBody == "up")
        #expect(config.services[2].healthCheck.kind == .redis)
    }

    @Test func error_whenTypeIsUnknown_pointsAtTheValue() {
        let found = errors(service("{type: grpc}"))
        #expect(found.map(\.description) == [
            "test.yaml:4:25: services[0].healthCheck.type: 'grpc' is not one of: tcp, http, send-expect, redis, postgres, mysql, tls",
        ])
    }

    @Test(arguments: [
        ("[200-299, 2x0]", 55, "services[0].healthCheck.expectStatus[1]", "'2x0' is not a status or a range of statuses (such as 200 or 200-299)"),
        ("299-200", 45, "services[0].healthCheck.expectStatus", "'299-200': the range ends before it starts"),
        ("700", 45, "services[0].healthCheck.expectStatus", "'700': a status is from 100 to 599"),
        ("[]", 45, "services[0].healthCheck.expectStatus", "needs at least one status or range (such as 200-399)"),
    ])
    func error_whenAStatusRangeIsBad_pointsAtIt(value: String, column: Int, key: String, message: String) {
        let found = errors(service("{type: http, expectStatus: \(value)}"))
        #expect(found.map(\.description) == ["test.yaml:4:\(column): \(key): \(message)"])
    }

    @Test func error_whenHexIsNotHex_pointsAtTheValue() {
        let found = errors(service("{type: send-expect, send: PING, expectHex: 2g}"))
        #expect(found.map(\.description) == [
            "test.yaml:4:61: services[0].healthCheck.expectHex: '2g' is not hex (pairs of digits 0-9, a-f, such as 2a0d0a)",
        ])
    }

    @Test func error_whenAnEscapeIsUnknown_pointsAtTheValue() {
        let found = errors(service(#"{type: send-expect, send: 'PING\q'}"#))
        #expect(found.count == 1)
        #expect(found.first?.line == 4 && found.first?.column == 44)
        #expect(found.first?.key == "services[0].healthCheck.send")
        #expect(found.first?.message.hasPrefix("unknown escape '\\q'") == true)
    }

    @Test func error_whenAKeyBelongsToAnotherType_saysWhichTypeItIsFor() {
        let found = errors(service("{type: redis, path: /x}"))
        #expect(found.map(\.description) == [
            "test.yaml:4:32: services[0].healthCheck.path: applies to type http only (this check's type is redis)",
        ])
        let tcp = errors(service("{expect: OK}"))
        #expect(tcp.first?.message == "applies to type send-expect only (this check's type is tcp)")
    }

    @Test func error_whenSendExpectHasNothingToSendOrExpect_isReported() {
        let found = errors(service("{type: send-expect}"))
        #expect(found.map(\.description) == [
            "test.yaml:4:18: services[0].healthCheck: type send-expect needs send (or sendHex), expect (or expectHex), or both",
        ])
    }

    @Test func error_whenBothTextAndHexAreGiven_isReported() {
        let found = errors(service("{type: send-expect, send: PING, sendHex: 0a}"))
        #expect(found.map(\.description) == ["test.yaml:4:50: services[0].healthCheck.sendHex: give send or sendHex, not both"])
    }

    @Test(arguments: [
        ("{port: 0}", "services[0].healthCheck.port", "0 is out of range (1-65535)"),
        ("{type: http, path: ready}", "services[0].healthCheck.path", "'ready' is not a request path (it starts with / and has no space or control character)"),
        ("{type: http, host: 'a b'}", "services[0].healthCheck.host", "'a b' is not a host (such as web.local or web.local:8080)"),
        ("{type: http, expectBody: ''}", "services[0].healthCheck.expectBody", "must not be empty"),
        ("{type: tls, serverName: 'a..b'}", "services[0].healthCheck.serverName", "'a..b' is not a DNS name"),
    ])
    func error_whenAValueIsBad_namesTheKey(check: String, key: String, message: String) {
        let found = errors(service(check))
        #expect(found.count == 1)
        #expect(found.first?.key == key)
        #expect(found.first?.message == message)
        #expect(found.first?.line == 4)
    }
}

extension HealthCheckKind {
    fileprivate var httpStatuses: [ClosedRange<Int>]? {
        if case .http(let http) = self { http.expectStatus } else { nil }
    }
}
