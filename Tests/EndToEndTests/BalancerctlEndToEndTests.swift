import Foundation
import Glibc
import Testing

/// `balancerctl` against the real daemon: the table, the commands and the exit codes.
@Suite struct BalancerctlEndToEndTests {
    private func ctl(_ arguments: [String]) throws -> Program.Outcome {
        try Program.run(Harness.balancerctl, arguments)
    }

    @Test func status_printsAnAlignedTableOfEveryEndpoint() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), adminPort: admin))
        let client = try TestClient(port: port)
        try client.send("hello")
        client.shutdownWrite()
        _ = try client.readToEnd()
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["activeConnections"] as? Int == 0 })
        let outcome = try ctl(["status", "--admin", "127.0.0.1:\(admin)"])
        #expect(outcome.status == 0)
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].split(separator: " ") == ["SERVICE", "ENDPOINT", "STATE", "ADMIN", "WEIGHT", "ACTIVE", "TOTAL", "BYTES-IN", "BYTES-OUT"])
        #expect(lines[1].split(separator: " ") == ["web", Substring(backends[0].address), "up", "ready", "1", "0", "1", "5", "13"])
        #expect(lines[2].split(separator: " ") == ["web", Substring(backends[1].address), "up", "ready", "1", "0", "0", "0", "0"])
        // Aligned: every column starts (text) or ends (figures) at the same place on each line.
        let header = lines[0]
        let endpointColumn = header.distance(from: header.startIndex, to: header.range(of: "ENDPOINT")!.lowerBound)
        for line in lines.dropFirst() {
            #expect(line.count == header.count)
            #expect(Array(line)[endpointColumn...].starts(with: "127.0.0.1:"))
        }
        // Options may come first too.
        let json = try ctl(["--admin", "127.0.0.1:\(admin)", "status", "--json"])
        #expect(json.status == 0)
        let stats = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((stats?["services"] as? [[String: Any]])?.first?["name"] as? String == "web")
        withExtendedLifetime(daemon) {}
    }

    @Test func commands_changeTheEndpoint_andExitZero() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), adminPort: admin))
        let target = ["--admin", "127.0.0.1:\(admin)", "web", backends[0].address]
        let drain = try ctl(["drain"] + target)
        #expect(drain.status == 0)
        #expect(drain.stdout == "web \(backends[0].address): admin drain, state up, weight 1, active 0\n")
        #expect(try TestClient.answers(port, count: 3) == ["b", "b", "b"])
        #expect(try ctl(["maintenance"] + target).status == 0)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "maintenance")
        #expect(try ctl(["ready"] + target).status == 0)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "ready")
        let weight = try ctl(["weight"] + target + ["4", "--json"])
        #expect(weight.status == 0)
        let entry = try JSONSerialization.jsonObject(with: Data(weight.stdout.utf8)) as? [String: Any]
        #expect(entry?["weight"] as? Int == 4)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["weight"] as? Int == 4)
        withExtendedLifetime(daemon) {}
    }

    @Test func errorAnswers_exitOne_withTheMessage_andUsageErrors_exitTwo() throws {
        let backend = try BackendProcess(name: "a")
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address],
                                                                  top: ["  token: s3cret"], adminPort: admin))
        let at = ["--admin", "127.0.0.1:\(admin)"]
        let unknown = try ctl(["drain", "nope", backend.address, "--token", "s3cret"] + at)
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "balancerctl: 404: no service 'nope'\n")
        let noToken = try ctl(["status"] + at)
        #expect(noToken.status == 1)
        #expect(noToken.stderr.contains("401"))
        #expect(try ctl(["status", "--token", "s3cret"] + at).status == 0)
        let unreachable = try ctl(["status", "--admin", "127.0.0.1:\(Harness.freePort())"])
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("cannot reach the admin port"))
        for usage in [["drain", "web"], ["weight", "web", backend.address, "heavy"], ["weight", "web", backend.address, "0"],
                      ["status", "--admin", "nowhere"], ["reboot"], []] {
            let outcome = try ctl(usage + (usage.contains("--admin") ? [] : at))
            #expect(outcome.status == 2, "\(usage): \(outcome.status) \(outcome.stderr)")
        }
        #expect(HTTPClient.endpoint(adminPort: admin, backend.address).isEmpty)  // /stats needs the token
        withExtendedLifetime(daemon) {}
    }
}
