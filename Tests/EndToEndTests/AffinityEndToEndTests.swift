import Foundation
import Glibc
import Testing

/// source-ip affinity across changes of the endpoint list made by reloads, with clients on
/// 32 loopback source addresses.
///
/// Maglev moves a few slots of the endpoints that stay (on average about 0.5% of them for
/// these list sizes; MaglevTableTests pins the bounds). With the 24 or so clients of the
/// staying endpoints, one of them moving happens in roughly one run in ten, two in fewer
/// than one in a hundred: the tests allow one.
@Suite struct AffinityEndToEndTests {
    private let sources = (2...33).map { "127.0.0.\($0)" }
    private let extra = ["balance: source-ip", "healthCheck: off"]

    /// Which backend answers each source address (each asked twice: it must not waver).
    private func placement(port: UInt16) throws -> [String: String] {
        var chosen: [String: String] = [:]
        for source in sources {
            let first = try TestClient(port: port, source: source).readLine()
            let again = try TestClient(port: port, source: source).readLine()
            #expect(first == again, "\(source) moved between two connections: \(first) then \(again)")
            chosen[source] = first
        }
        return chosen
    }

    private func reload(_ daemon: DaemonProcess, to config: String) throws {
        let before = daemon.logCount("reload (SIGHUP) complete")
        try daemon.rewriteConfig(config)
        daemon.send(SIGHUP)
        guard Harness.waitUntil(timeout: 5, { daemon.logCount("reload (SIGHUP) complete") > before }) else {
            throw HarnessError("the reload did not complete; log:\n\(daemon.log)")
        }
    }

    @Test func reload_whenAnEndpointIsRemoved_onlyItsClientsMove() throws {
        let backends = try ["a", "b", "c", "d"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), service: extra, adminPort: admin))
        let before = try placement(port: port)
        #expect(Set(before.values).count == 4, "every endpoint should have clients: \(before)")
        try reload(daemon, to: ConfigText.service(port: port, endpoints: [backends[0], backends[1], backends[3]].map(\.address), service: extra, adminPort: admin))
        let after = try placement(port: port)
        let stayed = before.filter { $0.value != "c" }
        let moved = stayed.filter { after[$0.key] != $0.value }
        #expect(moved.count <= 1, "clients of staying endpoints moved: \(moved.keys.sorted()) of \(stayed.count)")
        #expect(!after.values.contains("c"))
        withExtendedLifetime(backends) {}
    }

    @Test func reload_whenAnEndpointIsAdded_onlyClientsOfTheNewOneMove() throws {
        let backends = try ["a", "b", "c", "d"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.prefix(3).map(\.address), service: extra, adminPort: admin))
        let before = try placement(port: port)
        try reload(daemon, to: ConfigText.service(port: port, endpoints: backends.map(\.address), service: extra, adminPort: admin))
        let after = try placement(port: port)
        let toNew = before.filter { after[$0.key] == "d" }
        let elsewhere = before.filter { after[$0.key] != "d" && after[$0.key] != $0.value }
        #expect(elsewhere.count <= 1, "clients moved between the old endpoints: \(elsewhere.keys.sorted())")
        // About a quarter of the 32 clients go to the new endpoint.
        #expect(toNew.count >= 2, "only \(toNew.count) clients went to the new endpoint")
        withExtendedLifetime((backends, daemon)) {}
    }

    @Test func twoDaemons_withTheSameListAfterDifferentReloads_agreeOnEveryClient() throws {
        let backends = try ["a", "b", "c", "d", "e"].map { try BackendProcess(name: $0) }
        let list = backends.prefix(4).map(\.address)
        let first = Harness.freePort(), firstAdmin = Harness.freePort()
        let second = Harness.freePort(), secondAdmin = Harness.freePort()
        let steady = try DaemonProcess(config: ConfigText.service(port: first, endpoints: list, service: extra, adminPort: firstAdmin))
        // The second starts with two endpoints, grows to five, then shrinks to the same four.
        let moving = try DaemonProcess(config: ConfigText.service(port: second, endpoints: Array(list.prefix(2)), service: extra, adminPort: secondAdmin))
        try reload(moving, to: ConfigText.service(port: second, endpoints: backends.map(\.address), service: extra, adminPort: secondAdmin))
        try reload(moving, to: ConfigText.service(port: second, endpoints: list, service: extra, adminPort: secondAdmin))
        let one = try placement(port: first)
        let two = try placement(port: second)
        #expect(one == two, "the daemons disagree on \(sources.filter { one[$0] != two[$0] })")
        #expect(Set(one.values).count >= 3)
        withExtendedLifetime((backends, steady)) {}
    }
}
