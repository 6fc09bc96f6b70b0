import Foundation
import Glibc
import Testing

/// The runtime routes of the admin port against the real daemon: drain, maintenance,
/// ready, weight and close, under every policy.
@Suite struct RuntimeControlEndToEndTests {
    /// A daemon with one service in front of `backends` (checks every 100 ms unless `service` says otherwise).
    private func start(_ names: [String], service extra: [String] = [], top: [String] = [])
        throws -> (daemon: DaemonProcess, backends: [BackendProcess], port: UInt16, admin: UInt16) {
        let backends = try names.map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let checks = extra.contains { $0.hasPrefix("healthCheck") } ? [] : ["healthCheck: {interval: 100ms, timeout: 500ms, rise: 1, fall: 3}"]
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address), service: checks + extra,
                                                                  top: top, adminPort: admin))
        return (daemon, backends, port, admin)
    }

    private func setState(_ state: String, _ address: String, admin: UInt16) throws -> HTTPClient.Response {
        let response = try HTTPClient.command(adminPort: admin, address: address, verb: "state", body: "{\"state\":\"\(state)\"}")
        #expect(response.status == 200, "\(state) \(address): \(response.status) \(response.body)")
        return response
    }

    private func checksPassed(_ endpoint: [String: Any]) -> Int {
        (endpoint["checks"] as? [String: Any])?["passed"] as? Int ?? -1
    }

    @Test func post_whenEndpointIsDrained_getsNoNewConnections_whileOpenOnesAndChecksGoOn() throws {
        let (daemon, backends, port, admin) = try start(["a", "b"])
        let open = try TestClient(port: port)
        #expect(try open.readLine() == "a")
        let answer = try setState("drain", backends[0].address, admin: admin)
        let entry = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any] ?? [:]
        #expect(entry["address"] as? String == backends[0].address)
        #expect(entry["admin"] as? String == "drain")
        #expect(entry["state"] as? String == "up")
        #expect(try TestClient.answers(port, count: 4) == ["b", "b", "b", "b"])
        // The open connection goes on.
        try open.send("still here")
        open.shutdownWrite()
        #expect(String(decoding: try open.readToEnd(), as: UTF8.self) == "still hereeof 10\n")
        // Checks go on while drained.
        let before = checksPassed(HTTPClient.endpoint(adminPort: admin, backends[0].address))
        #expect(Harness.waitUntil(timeout: 5) { checksPassed(HTTPClient.endpoint(adminPort: admin, backends[0].address)) >= before + 2 })
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "drain")
        _ = try setState("ready", backends[0].address, admin: admin)
        #expect(try TestClient.answers(port, count: 4).contains("a"))
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "ready")
        withExtendedLifetime(daemon) {}
    }

    @Test func post_whenEndpointIsInMaintenance_getsNoConnectionsAndNoChecks_untilReady() throws {
        let (daemon, backends, port, admin) = try start(["a", "b"])
        _ = try setState("maintenance", backends[0].address, admin: admin)
        // The checks stopped before the answer: a's count stays while b's goes on.
        let resting = checksPassed(HTTPClient.endpoint(adminPort: admin, backends[0].address))
        let other = checksPassed(HTTPClient.endpoint(adminPort: admin, backends[1].address))
        #expect(Harness.waitUntil(timeout: 5) { checksPassed(HTTPClient.endpoint(adminPort: admin, backends[1].address)) >= other + 3 })
        #expect(checksPassed(HTTPClient.endpoint(adminPort: admin, backends[0].address)) == resting)
        #expect(try TestClient.answers(port, count: 3) == ["b", "b", "b"])
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "maintenance")
        _ = try setState("ready", backends[0].address, admin: admin)
        #expect(Harness.waitUntil(timeout: 5) { checksPassed(HTTPClient.endpoint(adminPort: admin, backends[0].address)) > resting })
        #expect(try TestClient.answers(port, count: 4).contains("a"))
        withExtendedLifetime(daemon) {}
    }

    @Test func post_whenEveryEndpointIsDrained_closesNewConnectionsAtOnce() throws {
        let (daemon, backends, port, admin) = try start(["a"])
        _ = try setState("drain", backends[0].address, admin: admin)
        #expect(try TestClient(port: port, timeout: 3).waitForClose() != nil)
        #expect(HTTPClient.firstService(adminPort: admin)["failedConnections"] as? Int == 1)
        withExtendedLifetime(daemon) {}
    }

    @Test(arguments: ["least-connections", "round-robin"])
    func post_drain_isHonouredByThePolicy(policy: String) throws {
        let (daemon, backends, port, admin) = try start(["a", "b", "c"], service: ["balance: \(policy)"])
        _ = try setState("drain", backends[1].address, admin: admin)
        let answers = try TestClient.answers(port, count: 6)
        #expect(!answers.contains("b"), "\(answers)")
        #expect(Set(answers) == ["a", "c"])
        withExtendedLifetime(daemon) {}
    }

    @Test func post_drain_withSourceIP_movesOnlyTheDrainedEndpointsClients_andReadyBringsThemBack() throws {
        let (daemon, backends, port, admin) = try start(["a", "b", "c"], service: ["balance: source-ip"])
        let sources = (2...25).map { "127.0.0.\($0)" }
        func map() throws -> [String: String] {
            var chosen: [String: String] = [:]
            for source in sources { chosen[source] = try TestClient(port: port, source: source).readLine() }
            return chosen
        }
        let before = try map()
        let drained = before["127.0.0.2"]!
        let address = backends.first { $0.name == drained }!.address
        _ = try setState("drain", address, admin: admin)
        let during = try map()
        for source in sources {
            if before[source] == drained {
                #expect(during[source] != drained, "\(source) stayed on the drained endpoint")
            } else {
                #expect(during[source] == before[source], "\(source) moved though its endpoint was not drained")
            }
        }
        _ = try setState("ready", address, admin: admin)
        #expect(try map() == before)
        withExtendedLifetime(daemon) {}
    }

    @Test func post_drain_inActivePassive_letsTheNextTakeOver_andReadyTakesItBack() throws {
        let (daemon, backends, port, admin) = try start(["a", "b", "c"], service: ["mode: active-passive"])
        #expect(try TestClient.answers(port, count: 2) == ["a", "a"])
        _ = try setState("drain", backends[0].address, admin: admin)
        #expect(try TestClient.answers(port, count: 2) == ["b", "b"])
        _ = try setState("maintenance", backends[1].address, admin: admin)
        #expect(try TestClient.answers(port, count: 2) == ["c", "c"])
        _ = try setState("ready", backends[0].address, admin: admin)
        #expect(try TestClient.answers(port, count: 2) == ["a", "a"])
        withExtendedLifetime(daemon) {}
    }

    @Test func post_drain_keepsQueuedConnectionsOff_andReadyServesTheQueue() throws {
        let a = try BackendProcess(name: "a")
        let b = try BackendProcess(name: "b")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - name: web
            listen: 127.0.0.1:\(port)
            queue: {size: 5, timeout: 10s}
            endpoints:
              - {address: \(a.address), maxConnections: 1}
              - {address: \(b.address), maxConnections: 1}
        """)
        _ = try setState("drain", b.address, admin: admin)
        let holder = try TestClient(port: port)
        #expect(try holder.readLine() == "a")
        // b has a free slot, but it is drained: the next one waits for a.
        let waiting = try TestClient(port: port)
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["queued"] as? Int == 1 })
        _ = try setState("ready", b.address, admin: admin)
        #expect(try waiting.readLine() == "b")
        withExtendedLifetime((daemon, holder)) {}
    }

    @Test func post_weight_appliesAtOnce_toSmoothWeightedRoundRobin() throws {
        let (daemon, backends, port, admin) = try start(["a", "b"])
        let response = try HTTPClient.command(adminPort: admin, address: backends[0].address, verb: "weight", body: #"{"weight": 3}"#)
        #expect(response.status == 200)
        #expect(response.body.contains("\"weight\":3"))
        #expect(try TestClient.answers(port, count: 8) == ["a", "a", "b", "a", "a", "a", "b", "a"])
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["weight"] as? Int == 3)
        let bad = try HTTPClient.command(adminPort: admin, address: backends[0].address, verb: "weight", body: #"{"weight": 257}"#)
        #expect(bad.status == 400)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["weight"] as? Int == 3)
        withExtendedLifetime(daemon) {}
    }

    @Test func post_close_endsThatEndpointsOpenConnectionsOnly() throws {
        let (daemon, backends, port, admin) = try start(["a", "b"], service: [], top: ["workers: 2"])
        let clients = try (0..<4).map { _ in try TestClient(port: port) }
        let names = try clients.map { try $0.readLine() }
        #expect(names.sorted() == ["a", "a", "b", "b"])
        let response = try HTTPClient.command(adminPort: admin, address: backends[0].address, verb: "close", body: "")
        #expect(response.status == 200)
        for (client, name) in zip(clients, names) where name == "a" {
            #expect(client.waitForClose() != nil)
        }
        for (client, name) in zip(clients, names) where name == "b" {
            try client.send("x")
            client.shutdownWrite()
            #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "xeof 1\n")
        }
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.endpoint(adminPort: admin, backends[0].address)["activeConnections"] as? Int == 0 })
        // The endpoint stays ready: new connections still reach it.
        #expect(try TestClient.answers(port, count: 2).contains("a"))
        withExtendedLifetime(daemon) {}
    }

    @Test func post_errors_areJSONWithTheirStatus() throws {
        let (daemon, backends, _, admin) = try start(["a"])
        let address = backends[0].address
        func status(_ service: String = "web", _ target: String, _ verb: String = "state", _ body: String = #"{"state":"drain"}"#) throws -> (Int, String) {
            let response = try HTTPClient.command(adminPort: admin, service: service, address: target, verb: verb, body: body)
            #expect(response.head.contains("Content-Type: application/json"))
            return (response.status, response.body)
        }
        #expect(try status("nope", address).0 == 404)
        #expect(try status("web", "127.0.0.1:1").0 == 404)
        #expect(try status("web", address, "state", #"{"state":"sleep"}"#).0 == 400)
        #expect(try status("web", address, "state", "not json").0 == 400)
        #expect(try status("web", address, "close", #"{"x":1}"#).0 == 400)
        #expect(try status("web", address, "close", "{}").0 == 200)
        #expect(HTTPClient.endpoint(adminPort: admin, address)["admin"] as? String == "ready")
        withExtendedLifetime(daemon) {}
    }

    @Test func post_forAnIPv6Endpoint_takesItsAddressPercentEncoded() throws {
        // The route alone is under test: the endpoint needs no backend (testbackend is IPv4 only).
        let endpointPort = Harness.freePort()
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let address = "[::1]:\(endpointPort)"
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: ["\"\(address)\""], service: ["healthCheck: off"], adminPort: admin))
        let encoded = "%5B%3A%3A1%5D%3A\(endpointPort)"
        let response = try HTTPClient.command(adminPort: admin, address: encoded, verb: "state", body: #"{"state":"drain"}"#)
        #expect(response.status == 200)
        #expect(response.body.contains("\"address\":\"\(address)\""))
        #expect(HTTPClient.endpoint(adminPort: admin, address)["admin"] as? String == "drain")
        #expect(try HTTPClient.command(adminPort: admin, address: address, verb: "state", body: #"{"state":"ready"}"#).status == 200)
        withExtendedLifetime(daemon) {}
    }
}
