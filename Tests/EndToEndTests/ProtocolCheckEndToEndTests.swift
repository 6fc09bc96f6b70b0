import Foundation
import Testing

/// Health checks that speak the endpoint's protocol, against real servers (nginx, Redis,
/// PostgreSQL, the suite's own banner server), each started and stopped by its test.
@Suite(.serialized) struct ProtocolCheckEndToEndTests {
    struct ServiceText {
        var name: String
        var port = Harness.freePort()
        var endpoints: [String]
        /// The healthCheck flow mapping's inside, after the fast timings.
        var check: String
        var extra: [String] = []
    }

    let admin = Harness.freePort()

    /// A configuration with these services, each checked every 200 ms.
    func config(_ services: [ServiceText], rise: Int = 2, fall: Int = 2) -> String {
        var lines = ["admin:", "  listen: 127.0.0.1:\(admin)", "services:"]
        for service in services {
            lines += ["  - name: \(service.name)", "    listen: 127.0.0.1:\(service.port)"]
            lines += ["    healthCheck: {interval: 200ms, timeout: 1s, rise: \(rise), fall: \(fall), \(service.check)}"]
            lines += service.extra.map { "    " + $0 }
            lines += ["    endpoints:"] + service.endpoints.map { "      - \($0)" }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The `/stats` entry of `address` in `service`.
    func endpoint(_ service: String, _ address: String) -> [String: Any] {
        let services = ((try? HTTPClient.stats(adminPort: admin))?["services"] as? [[String: Any]]) ?? []
        let endpoints = services.first { $0["name"] as? String == service }?["endpoints"] as? [[String: Any]]
        return endpoints?.first { $0["address"] as? String == address } ?? [:]
    }

    func lastCheck(_ service: String, _ address: String) -> [String: Any]? {
        endpoint(service, address)["lastCheck"] as? [String: Any]
    }

    /// Waits (bounded) until the last check of `address` in `service` has this outcome.
    func waitForCheck(_ service: String, _ address: String, ok: Bool, reason: String, timeout: Double = 10) -> Bool {
        Harness.waitUntil(timeout: timeout) {
            let check = lastCheck(service, address)
            return check?["ok"] as? Bool == ok && check?["reason"] as? String == reason
        }
    }

    // MARK: http

    @Test func http_nginxAnswering503_goesDownWithinFallChecks_andComesBackAfterRise() throws {
        let nginx = try NginxServer()
        let web = ServiceText(name: "web", endpoints: [nginx.address], check: "type: http, path: /ready, expectStatus: [200-299], expectBody: ready")
        let strict = ServiceText(name: "strict", endpoints: [nginx.address], check: "type: http, path: /ready, expectBody: absent-text")
        let daemon = try DaemonProcess(config: config([web, strict]))
        #expect(waitForCheck("web", nginx.address, ok: true, reason: "status 200"))
        // A 200 whose body lacks the text fails too.
        #expect(Harness.waitUntil(timeout: 10) { daemon.log.contains("service strict: endpoint \(nginx.address) down: body mismatch (2 consecutive failures)") })

        nginx.markDown()
        // fall × interval = 400 ms, plus a margin for a loaded machine. Clients keep
        // connecting meanwhile: their connects succeed, which must not cancel the failed checks.
        #expect(Harness.waitUntil(timeout: 0.4 + 5) {
            _ = try? TestClient(port: web.port, timeout: 1)
            return daemon.log.contains("service web: endpoint \(nginx.address) down: status 503 (2 consecutive failures)")
        })
        let failed = try #require(lastCheck("web", nginx.address))
        #expect(failed["ok"] as? Bool == false)
        #expect(failed["reason"] as? String == "status 503")
        #expect((failed["durationMs"] as? Double).map { $0 >= 0 } == true)
        #expect((failed["at"] as? Double).map { abs($0 - Date().timeIntervalSince1970) < 60 } == true)
        #expect(endpoint("web", nginx.address)["state"] as? String == "down")

        nginx.markUp()
        #expect(Harness.waitUntil(timeout: 0.4 + 5) {
            daemon.log.contains("service web: endpoint \(nginx.address) up: status 200 (2 consecutive passes)")
        })
        #expect(endpoint("web", nginx.address)["state"] as? String == "up")

        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("# TYPE balancerd_health_check_duration_seconds histogram"))
        let count = metrics.split(separator: "\n").first { $0.hasPrefix("balancerd_health_check_duration_seconds_count{service=\"web\"}") }
        // At least one pass before the 503, two failures, two passes.
        #expect(count.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 5 } == true)
        #expect(metrics.contains("balancerd_health_check_duration_seconds_bucket{service=\"web\",le=\"+Inf\"}"))
        #expect(try Harness.promtoolAccepts(metrics))
    }

    @Test func lastCheck_isNullBeforeTheFirstCheck() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        // Checks are spread over the interval: a's first comes at once, b's after half an hour.
        let web = ServiceText(name: "web", endpoints: [a.address, b.address], check: "type: tcp")
        let daemon = try DaemonProcess(config: config([web]).replacingOccurrences(of: "interval: 200ms", with: "interval: 1h"))
        #expect(waitForCheck("web", a.address, ok: true, reason: "check passed"))
        let entry = endpoint("web", b.address)
        #expect(entry.keys.contains("lastCheck"))
        #expect(entry["lastCheck"] is NSNull)
        withExtendedLifetime(daemon) {}
    }

    @Test func reload_thatChangesTheCheckType_checksTheNewWay() throws {
        let nginx = try NginxServer()
        nginx.markDown()
        var web = ServiceText(name: "web", endpoints: [nginx.address], check: "type: tcp")
        let daemon = try DaemonProcess(config: config([web]))
        // A connect is all a tcp check asks: nginx answering 503 passes.
        #expect(waitForCheck("web", nginx.address, ok: true, reason: "check passed"))
        web.check = "type: http, path: /ready"
        try daemon.rewriteConfig(config([web]))
        #expect(Harness.waitUntil(timeout: 10) { daemon.log.contains("service web: endpoint \(nginx.address) down: status 503 (2 consecutive failures)") })
    }

    // MARK: port

    @Test func port_checksAnotherPortOfTheEndpointsHost_andFollowsItsAnswer() throws {
        let backend = try BackendProcess(name: "a")
        let sidecar = try NginxServer()
        let web = ServiceText(name: "web", endpoints: [backend.address], check: "type: http, port: \(sidecar.port), path: /ready")
        let daemon = try DaemonProcess(config: config([web]))
        #expect(waitForCheck("web", backend.address, ok: true, reason: "status 200"))
        #expect(try TestClient.answers(web.port, count: 2) == ["a", "a"])

        // The endpoint's own port still answers; its sidecar says it is not ready.
        sidecar.markDown()
        #expect(Harness.waitUntil(timeout: 0.4 + 5) {
            daemon.log.contains("service web: endpoint \(backend.address) down: status 503 (2 consecutive failures)")
        })
        sidecar.markUp()
        #expect(Harness.waitUntil(timeout: 0.4 + 5) { daemon.log.contains("service web: endpoint \(backend.address) up: status 200") })
        #expect(try TestClient.answers(web.port, count: 1) == ["a"])
    }

    // MARK: tls

    @Test func tls_nginxWithTLS_passesWithItsServerName_andFailsOtherwise() throws {
        let nginx = try NginxServer(tls: true)
        let shop = ServiceText(name: "shop", endpoints: [nginx.tlsAddress], check: "type: tls, serverName: shop.example.com")
        let other = ServiceText(name: "other", endpoints: [nginx.tlsAddress], check: "type: tls, serverName: other.example.com")
        let plain = ServiceText(name: "plain", endpoints: [nginx.address], check: "type: tls")
        let daemon = try DaemonProcess(config: config([shop, other, plain]))
        #expect(waitForCheck("shop", nginx.tlsAddress, ok: true, reason: "server hello"))
        #expect(Harness.waitUntil(timeout: 10) {
            daemon.log.contains("service other: endpoint \(nginx.tlsAddress) down: tls alert unrecognized_name (2 consecutive failures)")
        })
        #expect(Harness.waitUntil(timeout: 10) {
            daemon.log.contains("service plain: endpoint \(nginx.address) down: unexpected answer (not TLS) (2 consecutive failures)")
        })
        #expect(endpoint("shop", nginx.tlsAddress)["state"] as? String == "up")
        #expect(!daemon.log.contains("service shop: endpoint \(nginx.tlsAddress) down"))
    }

    // MARK: send-expect

    @Test func sendExpect_againstTheBannerServer_keepsOnlyTheEndpointThatAnswersAsExpected() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        // The backend greets with its name, then echoes what it is sent.
        let web = ServiceText(name: "web", endpoints: [a.address, b.address], check: #"type: send-expect, send: "HELLO\r\n", expect: "a\nHELLO\r\n""#)
        let hex = ServiceText(name: "hex", endpoints: [a.address], check: "type: send-expect, sendHex: 50494e470a, expectHex: 610a50494e47")
        let daemon = try DaemonProcess(config: config([web, hex]))
        #expect(Harness.waitUntil(timeout: 10) {
            daemon.log.contains("service web: endpoint \(b.address) down: unexpected answer (2 consecutive failures)")
        })
        #expect(waitForCheck("web", a.address, ok: true, reason: "check passed"))
        #expect(waitForCheck("hex", a.address, ok: true, reason: "check passed"))
        #expect(try TestClient.answers(web.port, count: 3) == ["a", "a", "a"])

        a.kill()
        #expect(Harness.waitUntil(timeout: 10) {
            daemon.log.contains("service web: endpoint \(a.address) down: connection refused (2 consecutive failures)")
        })
    }

    // MARK: mysql

    /// A MySQL packet (sequence 0) with `payload`, in hex.
    static func mysqlPacket(_ payload: [UInt8]) -> String {
        ([UInt8(payload.count & 0xff), UInt8(payload.count >> 8 & 0xff), UInt8(payload.count >> 16), 0] + payload)
            .map { String(format: "%02x", $0) }.joined()
    }

    @Test func mysql_aProtocol10Greeting_passes_andAnErrorPacketFailsWithItsText() throws {
        // No MySQL server in Debian's main archive: the banner server plays one, sending the
        // bytes a real one sends first.
        let greeting = Self.mysqlPacket([0x0a] + Array("8.0.36".utf8) + [0, 8, 0, 0, 0] + Array("abcdefgh".utf8) + [0, 0xff, 0xf7])
        let server = try BackendProcess(name: "mysql", mode: "hex:" + greeting)
        let full = try BackendProcess(name: "full", mode: "hex:" + Self.mysqlPacket([0xff, 0x10, 0x04] + Array("#08004Too many connections".utf8)))
        let db = ServiceText(name: "db", endpoints: [server.address, full.address], check: "type: mysql")
        let daemon = try DaemonProcess(config: config([db]))
        #expect(waitForCheck("db", server.address, ok: true, reason: "mysql 8.0.36"))
        #expect(Harness.waitUntil(timeout: 10) { daemon.log.contains("service db: endpoint \(full.address) down: Too many connections (2 consecutive failures)") })
    }

    // MARK: redis

    @Test func redis_pingAnsweredByPONG_passes_andAReplicaLoadingItsDataSetIsDownUntilLoaded() throws {
        let primary = try RedisServer()
        try primary.fill(keys: 300, size: 1000)
        // 300 keys at 20 ms each: the replica answers -LOADING for about six seconds.
        let replica = try RedisServer(replicaOf: primary.port, loadDelayMicroseconds: 20_000)
        let cache = ServiceText(name: "cache", endpoints: [primary.address, replica.address], check: "type: redis")
        let daemon = try DaemonProcess(config: config([cache], rise: 1, fall: 1))
        #expect(waitForCheck("cache", primary.address, ok: true, reason: "+PONG"))
        #expect(Harness.waitUntil(timeout: 30) {
            daemon.log.contains("service cache: endpoint \(replica.address) down: -LOADING Redis is loading the dataset in memory (1 consecutive failures)")
        })
        #expect(Harness.waitUntil(timeout: 60) { daemon.log.contains("service cache: endpoint \(replica.address) up: +PONG (1 consecutive passes)") })
        #expect(try replica.command(["DBSIZE"]) == ":300")

        primary.kill()
        // Refused, or reset or timed out when the kill lands in the middle of a check.
        #expect(Harness.waitUntil(timeout: 10) { daemon.log.contains("service cache: endpoint \(primary.address) down: ") })
    }

    // MARK: postgres

    @Test func postgres_primaryShuttingDownIsDown_whileATCPCheckCallsItUp_andAPromotedStandbyComesUp() throws {
        let primary = try PostgresCluster()
        let standby = try PostgresCluster(standbyOf: primary)
        let db = ServiceText(name: "db", endpoints: [primary.address, standby.address], check: "type: postgres",
                             extra: ["mode: active-passive"])
        let tcp = ServiceText(name: "dbtcp", endpoints: [primary.address], check: "type: tcp")
        let daemon = try DaemonProcess(config: config([db, tcp]))
        #expect(waitForCheck("db", primary.address, ok: true, reason: "accepts connections", timeout: 20))
        // Hot standby is off: the standby refuses connections until promoted.
        #expect(Harness.waitUntil(timeout: 20) {
            daemon.log.contains("service db: endpoint \(standby.address) down: the database system is not accepting connections")
        })

        // A smart shutdown waits for the open session; meanwhile the port accepts
        // connections and refuses them as shutting down.
        let session = try primary.session("select pg_sleep(120)")
        #expect(Harness.waitUntil(timeout: 20) { primary.activeSessions() == 1 })
        try primary.stop(mode: "smart", wait: false)
        #expect(Harness.waitUntil(timeout: 20) {
            daemon.log.contains("service db: endpoint \(primary.address) down: the database system is shutting down (2 consecutive failures)")
        })
        // A TCP connect check is fooled: the port is open.
        #expect(endpoint("dbtcp", primary.address)["state"] as? String == "up")
        #expect(lastCheck("dbtcp", primary.address)?["ok"] as? Bool == true)

        try standby.promote()
        #expect(Harness.waitUntil(timeout: 30) { daemon.log.contains("service db: endpoint \(standby.address) up: accepts connections (2 consecutive passes)") })
        // Clients of the service now reach the promoted standby.
        #expect(try primary.query("select pg_is_in_recovery()", port: db.port) == "f")

        session.stop(SIGKILL)
        #expect(Harness.waitUntil(timeout: 30) { daemon.log.contains("service dbtcp: endpoint \(primary.address) down: connection refused") })
    }
}
