import Foundation
import Testing

/// Active checks and failover with real backends that are killed and restarted.
@Suite struct HealthCheckEndToEndTests {
    static let fastChecks = ["healthCheck:", "  interval: 200ms", "  timeout: 200ms", "  rise: 2", "  fall: 2"]


    @Test func activeCheck_whenBackendStops_takesItDownThenBackAfterRisePasses() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address, b.address], service: Self.fastChecks))
        #expect(try TestClient.answers(port, count: 4) == ["a", "b", "a", "b"])

        a.kill()
        // fall × interval = 400 ms, plus a margin.
        let down = Harness.waitUntil(timeout: 0.4 + 1.5) {
            daemon.log.contains("service web: endpoint \(a.address) down: connection refused (2 consecutive failures)")
        }
        #expect(down)
        #expect(try TestClient.answers(port, count: 4) == ["b", "b", "b", "b"])

        let restarted = try BackendProcess(name: "a", port: a.port)
        let up = Harness.waitUntil(timeout: 0.4 + 1.5) {
            daemon.log.contains("service web: endpoint \(a.address) up: check passed (2 consecutive passes)")
        }
        #expect(up)
        #expect(Set(try TestClient.answers(port, count: 4)) == ["a", "b"])
        _ = restarted
    }

    @Test func activePassive_withFailback_switchesToStandbyAndReturnsToPreferred() throws {
        let primary = try BackendProcess(name: "primary")
        let standby = try BackendProcess(name: "standby")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [primary.address, standby.address],
            service: ["mode: active-passive", "failback: true"] + Self.fastChecks))
        #expect(try TestClient.answers(port, count: 3) == ["primary", "primary", "primary"])

        primary.kill()
        // The first connection after the kill is already served by the standby (the refused
        // connect is retried there).
        #expect(try TestClient.answers(port, count: 3) == ["standby", "standby", "standby"])

        let back = try BackendProcess(name: "primary", port: primary.port)
        #expect(Harness.waitUntil(timeout: 2) { daemon.log.contains("endpoint \(primary.address) up") })
        #expect(try TestClient.answers(port, count: 3) == ["primary", "primary", "primary"])
        _ = back
    }

    @Test func activePassive_withoutFailback_staysOnTheStandbyUntilItFails() throws {
        let primary = try BackendProcess(name: "primary")
        let standby = try BackendProcess(name: "standby")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [primary.address, standby.address],
            service: ["mode: active-passive", "failback: false"] + Self.fastChecks))
        #expect(try TestClient.answers(port, count: 2) == ["primary", "primary"])

        primary.kill()
        #expect(Harness.waitUntil(timeout: 2) { daemon.log.contains("endpoint \(primary.address) down") })
        #expect(try TestClient.answers(port, count: 2) == ["standby", "standby"])

        let back = try BackendProcess(name: "primary", port: primary.port)
        #expect(Harness.waitUntil(timeout: 2) { daemon.log.contains("endpoint \(primary.address) up") })
        // The preferred endpoint is up again, but the one in use stays in use...
        #expect(try TestClient.answers(port, count: 3) == ["standby", "standby", "standby"])
        // ...until it fails.
        standby.kill()
        #expect(try TestClient.answers(port, count: 2) == ["primary", "primary"])
        _ = back
    }

    @Test func failover_clientConnectingContinuously_seesNoFailedConnection() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [a.address, b.address], service: Self.fastChecks))
        var failures = 0
        var served: [String: Int] = [:]
        var restarted: BackendProcess?
        for iteration in 0..<300 {
            if iteration == 50 { a.kill() }
            if iteration == 200 { restarted = try BackendProcess(name: "a", port: a.port) }
            do {
                let client = try TestClient(port: port, timeout: 2)
                served[try client.readLine(), default: 0] += 1
            } catch {
                failures += 1
            }
            usleep(5_000)
        }
        #expect(failures == 0)
        #expect(served.values.reduce(0, +) == 300)
        #expect(daemon.log.contains("endpoint \(a.address) down"))
        _ = restarted
    }
}
