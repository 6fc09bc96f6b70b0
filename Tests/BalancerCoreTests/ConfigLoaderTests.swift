import Foundation
import Testing
@testable import BalancerCore

@Suite struct ConfigLoaderTests {
    private func parse(_ text: String) throws -> Config { try ConfigFixture.parse(text) }
    private func errors(_ text: String) -> [ConfigError] { ConfigFixture.errors(text) }

    @Test func parse_whenFullExample_readsEveryKey() throws {
        let config = try parse("""
        admin:
          listen: 127.0.0.1:9911
        log:
          level: debug
        workers: 2
        limits:
          maxConnections: 5000
        defaults:
          connectTimeout: 250ms
          idleTimeout: 1h
          drainTimeout: 5s
          retries: 1
          healthCheck:
            interval: 2s
            timeout: 1s
            rise: 4
            fall: 5
        services:
          - name: web
            listen: 0.0.0.0:30080
            endpoints:
              - 127.0.0.1:8081
              - 127.0.0.1:8082
          - name: db
            listen: "[::]:30500"
            mode: active-passive
            failback: false
            retries: 0
            healthCheck:
              interval: 500ms
            endpoints:
              - 127.0.0.1:5432
              - "[::1]:5433"
        """)
        #expect(config.admin.listen.description == "127.0.0.1:9911")
        #expect(config.logLevel == .debug)
        #expect(config.workers == 2)
        #expect(config.maxConnections == 5000)
        #expect(config.services.count == 2)
        let web = config.services[0]
        #expect(web.name == "web")
        #expect(web.listen.description == "0.0.0.0:30080")
        #expect(web.mode == .activeActive)
        #expect(web.connectTimeout == 0.25)
        #expect(web.idleTimeout == 3600)
        #expect(web.drainTimeout == 5)
        #expect(web.retries == 1)
        #expect(web.healthCheck.rise == 4 && web.healthCheck.fall == 5)
        let db = config.services[1]
        #expect(db.listen.description == "[::]:30500")
        #expect(db.mode == .activePassive)
        #expect(db.failback == false)
        #expect(db.retries == 0)
        // A service's healthCheck overrides only the fields it names.
        #expect(db.healthCheck.interval == 0.5)
        #expect(db.healthCheck.timeout == 1)
        #expect(db.healthCheck.fall == 5)
        #expect(db.endpoints.map(\.address.description) == ["127.0.0.1:5432", "[::1]:5433"])
        #expect(config.endpointCount == 4)
    }

    @Test func parse_whenKeysOmitted_usesContractDefaults() throws {
        let config = try parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081]
        """)
        #expect(config.admin.listen.description == "127.0.0.1:9901")
        #expect(config.logLevel == .info)
        #expect(config.workers == nil)
        #expect(config.maxConnections == 100_000)
        let web = config.services[0]
        #expect(web.mode == .activeActive && web.failback)
        #expect(web.connectTimeout == 2 && web.idleTimeout == 3600 && web.drainTimeout == 30 && web.retries == 2)
        #expect(web.healthCheck == HealthCheckConfig())
        #expect(web.healthCheck.interval == 2 && web.healthCheck.timeout == 1)
        #expect(web.healthCheck.rise == 2 && web.healthCheck.fall == 3)
    }

    @Test(arguments: ["off", "false", "\"off\"", "'off'"])
    func parse_whenHealthCheckOff_disablesChecks(spelling: String) throws {
        let config = try parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            healthCheck: \(spelling)
            endpoints: [127.0.0.1:8081]
        """)
        #expect(config.services[0].healthCheck.enabled == false)
    }

    @Test func parse_whenEndpointIsDNSName_followsItWithoutResolving() throws {
        let config = try parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints: [localhost:8081, 127.0.0.1:8082]
        """)
        // Names are resolved on the loop once the daemon runs; the file alone has the literals.
        #expect(config.services[0].endpoints.map(\.name) == ["127.0.0.1:8082"])
        #expect(config.services[0].sources.first == .name(DNSName(kind: .addresses, host: "localhost", port: 8081)))
    }

    @Test func error_whenPortOutOfRange_namesFileLineColumnAndKey() {
        let found = errors("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081]
          - name: api
            listen: 0.0.0.0:70000
            endpoints: [127.0.0.1:8081]
        """)
        #expect(found.map(\.description) == ["test.yaml:6:13: services[1].listen: port 70000 is out of range (1-65535)"])
    }

    @Test func error_whenUnknownKey_pointsAtTheKey() {
        let found = errors("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpionts: [127.0.0.1:8081]
        """)
        #expect(found.contains { $0.line == 4 && $0.column == 5 && $0.key == "services[0].endpionts" && $0.message.hasPrefix("unknown key") })
    }

    @Test func error_whenUnknownTopLevelKey_isRejected() {
        let found = errors("""
        service:
          - name: web
        """)
        #expect(found.contains { $0.key == "service" && $0.line == 1 && $0.column == 1 })
    }

    @Test(arguments: ["2", "1.5s", "-1s", "2 s", "fast", "10d"])
    func error_whenDurationIsBad_namesTheDurationKey(value: String) {
        let found = errors("""
        defaults:
          connectTimeout: \(value)
        services: []
        """)
        #expect(found.count == 1)
        #expect(found.first?.key == "defaults.connectTimeout")
        #expect(found.first?.line == 2 && found.first?.column == 19)
        #expect(found.first?.message.contains("not a duration") == true)
    }

    @Test func error_whenListenAddressRepeats_isReportedAtTheSecondService() {
        let found = errors("""
        services:
          - name: a
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081]
          - name: b
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8082]
        """)
        #expect(found.map(\.description) == ["test.yaml:6:13: services[1].listen: 127.0.0.1:30080 is already the listen address of service a (services may share one when each has serverNames)"])
    }

    @Test func error_whenServiceHasNoEndpoints_isRejected() {
        let empty = errors("""
        services:
          - name: a
            listen: 127.0.0.1:30080
            endpoints: []
        """)
        #expect(empty.map(\.key) == ["services[0].endpoints"])
        let missing = ConfigFixture.errors("""
        services:
          - name: a
            listen: 127.0.0.1:30080
        """)
        #expect(missing.map(\.key) == ["services[0].endpoints"])
        #expect(missing.first?.line == 2 && missing.first?.column == 5)
    }

    @Test func error_whenModeIsUnknown_listsTheModes() {
        let found = errors("""
        services:
          - name: a
            listen: 127.0.0.1:30080
            mode: round-robin
            endpoints: [127.0.0.1:8081]
        """)
        #expect(found.map(\.description) == ["test.yaml:4:11: services[0].mode: 'round-robin' is not one of: active-active, active-passive"])
    }

    @Test func error_whenNameIsInvalidOrRepeated_isRejected() {
        let found = errors("""
        services:
          - name: "we b"
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081]
          - name: api
            listen: 127.0.0.1:30081
            endpoints: [127.0.0.1:8081]
          - name: api
            listen: 127.0.0.1:30082
            endpoints: [127.0.0.1:8081]
        """)
        #expect(found.map(\.key) == ["services[0].name", "services[2].name"])
    }

    @Test func error_whenAdminIsNotLoopback_needsAllowRemote() throws {
        let found = errors("""
        admin:
          listen: 0.0.0.0:9901
        services: []
        """)
        #expect(found.map(\.key) == ["admin.listen"])
        // A remote admin port needs a token too (see parse_adminTokenErrors_nameTheKeyAndPosition).
        let allowed = try parse("""
        admin:
          listen: 0.0.0.0:9901
          allowRemote: true
          token: s3cret
        services: []
        """)
        #expect(allowed.admin.allowRemote)
    }

    @Test func error_whenYAMLIsBroken_givesItsPosition() {
        let found = errors("""
        services:
          - name: a
            listen: [127.0.0.1:30080
        """)
        #expect(found.count == 1)
        #expect(found.first?.line ?? 0 >= 3)
        #expect(found.first?.message.hasPrefix("YAML syntax") == true)
    }

    @Test func error_whenSeveralProblems_reportsEachOne() {
        let found = errors("""
        defaults:
          retries: many
        services:
          - name: a
            listen: 127.0.0.1:0
            endpoints: [nohost]
        """)
        #expect(found.map(\.key) == ["defaults.retries", "services[0].listen", "services[0].endpoints[0]"])
    }

    @Test func parse_whenHostDoesNotResolve_isNoError_becauseNothingIsResolved() throws {
        let config = try parse("""
        services:
          - name: a
            listen: 127.0.0.1:30080
            endpoints: [no-such-host.invalid:80]
        """)
        #expect(config.dnsNames.map(\.host) == ["no-such-host.invalid"])
    }

    @Test func error_whenWorkersIsBad_isRejected() {
        #expect(errors("workers: 0\nservices: []").map(\.key) == ["workers"])
        #expect(errors("workers: many\nservices: []").map(\.key) == ["workers"])
    }

    @Test func error_whenFileIsMissing_namesIt() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/balancerd.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.first?.file == "/nonexistent/balancerd.yaml")
        }
    }
}

@Suite struct ConfigPolicyKeysTests {
    @Test func parse_whenPolicyKeysAndLongEndpoints_readsThem() throws {
        let config = try ConfigLoader.parse("""
        defaults:
          balance: least-connections
          queue: {size: 10, timeout: 2s}
        services:
          - name: api
            listen: 127.0.0.1:30443
            balance: round-robin
            proxyProtocol: v2
            queue:
              size: 1000
            endpoints:
              - 127.0.0.1:8081
              - address: 127.0.0.1:8082
                weight: 3
                maxConnections: 100
          - name: other
            listen: 127.0.0.1:30444
            proxyProtocol: off
            endpoints: [127.0.0.1:8081]
        """, path: "p.yaml")
        let api = config.services[0]
        #expect(api.balance == .roundRobin)
        #expect(api.proxyProtocol == .v2)
        #expect(api.queue == QueueConfig(size: 1000, timeout: 2))
        #expect(api.endpoints[0].weight == 1 && api.endpoints[0].maxConnections == nil)
        #expect(api.endpoints[1].weight == 3 && api.endpoints[1].maxConnections == 100)
        let other = config.services[1]
        #expect(other.balance == .leastConnections)
        #expect(other.proxyProtocol == .off)
        #expect(other.queue == QueueConfig(size: 10, timeout: 2))
    }

    @Test func error_whenPolicyValuesAreBad_namesEachKey() {
        do {
            _ = try ConfigLoader.parse("""
            services:
              - name: api
                listen: 127.0.0.1:30443
                balance: random
                proxyProtocol: v3
                queue: {size: 0, timeout: 5}
                endpoints:
                  - address: 127.0.0.1:8082
                    weight: 300
                  - weight: 2
            """, path: "p.yaml")
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.map(\.key) == ["services[0].balance", "services[0].proxyProtocol", "services[0].queue.size",
                                                "services[0].queue.timeout", "services[0].endpoints[0].weight",
                                                "services[0].endpoints[1].address"])
        }
    }

    @Test func parse_adminTokenAndStateFile_areRead_andRelativePathsFollowTheFile() throws {
        let config = try ConfigLoader.parse("""
        admin:
          listen: 127.0.0.1:9901
          token: s3cret
          stateFile: state.json
        services:
          - {name: web, listen: 127.0.0.1:30080, endpoints: [127.0.0.1:8081]}
        """, path: "/etc/balancerd/balancerd.yaml")
        #expect(config.admin.token == "s3cret")
        #expect(config.admin.stateFile == "/etc/balancerd/state.json")
    }

    @Test func parse_adminTokenFile_readsItsFirstLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("balancerd-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "  t0ken-from-file \r\nignored\n".write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        let config = try ConfigLoader.parse("""
        admin: {listen: "0.0.0.0:9901", allowRemote: true, tokenFile: token}
        services:
          - {name: web, listen: 127.0.0.1:30080, endpoints: [127.0.0.1:8081]}
        """, path: directory.appendingPathComponent("balancerd.yaml").path)
        #expect(config.admin.token == "t0ken-from-file")
    }

    @Test func parse_adminTokenErrors_nameTheKeyAndPosition() {
        let service = "services:\n  - {name: web, listen: 127.0.0.1:30080, endpoints: [127.0.0.1:8081]}\n"
        let remote = ConfigFixture.errors("admin:\n  listen: 0.0.0.0:9901\n  allowRemote: true\n" + service)
        #expect(remote.map(\.key) == ["admin.allowRemote"])
        #expect(remote.first?.line == 3)
        #expect(remote.first?.column == 16)
        #expect(remote.first?.message.contains("admin.token") == true)
        #expect(ConfigFixture.errors("admin:\n  token: a\n  tokenFile: b\n" + service).map(\.key) == ["admin.token"])
        #expect(ConfigFixture.errors("admin:\n  token: \"two words\"\n" + service).map(\.key) == ["admin.token"])
        let missing = ConfigFixture.errors("admin:\n  tokenFile: /nonexistent/balancerd-token\n" + service)
        #expect(missing.map(\.key) == ["admin.tokenFile"])
        #expect(missing.first?.line == 2)
        #expect(ConfigFixture.errors("admin:\n  stateFile: [a]\n" + service).map(\.key) == ["admin.stateFile"])
    }
}
