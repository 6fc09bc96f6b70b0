import Foundation
import Glibc
import Testing

/// Runtime state that lasts: across reloads, and with `admin.stateFile` across restarts.
@Suite struct RuntimeStateEndToEndTests {
    private func config(port: UInt16, admin: UInt16, endpoints: [String], stateFile: String?) -> String {
        ConfigText.service(port: port, endpoints: endpoints, top: stateFile.map { ["  stateFile: \($0)"] } ?? [], adminPort: admin)
    }

    private func generation(_ admin: UInt16) -> Int {
        ((try? HTTPClient.stats(adminPort: admin))?["config"] as? [String: Any])?["generation"] as? Int ?? 0
    }

    @Test func post_state_andWeight_lastAcrossReload_andAcrossRestartWithStateFile() throws {
        let backends = try ["a", "b", "c"].map { try BackendProcess(name: $0) }
        let folder = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("balancerd.yaml").path
        let stateFile = folder.appendingPathComponent("state.json").path
        let port = Harness.freePort()
        let admin = Harness.freePort()
        try config(port: port, admin: admin, endpoints: backends.prefix(2).map(\.address), stateFile: stateFile)
            .write(toFile: path, atomically: true, encoding: .utf8)
        var daemon: DaemonProcess? = try DaemonProcess(configFile: path)
        #expect(try HTTPClient.command(adminPort: admin, address: backends[0].address, verb: "state", body: #"{"state":"drain"}"#).status == 200)
        #expect(try HTTPClient.command(adminPort: admin, address: backends[1].address, verb: "weight", body: #"{"weight":5}"#).status == 200)
        let saved = try String(contentsOfFile: stateFile, encoding: .utf8)
        #expect(saved.contains(backends[0].address) && saved.contains("\"drain\"") && saved.contains("\"weight\":5"))

        // A reload that adds an endpoint keeps the state and weight of those that stay.
        try config(port: port, admin: admin, endpoints: backends.map(\.address), stateFile: stateFile)
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Harness.waitUntil(timeout: 5) { generation(admin) == 2 })
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "drain")
        #expect(HTTPClient.endpoint(adminPort: admin, backends[1].address)["weight"] as? Int == 5)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[2].address)["admin"] as? String == "ready")
        #expect(!(try TestClient.answers(port, count: 6)).contains("a"))

        // A restart reads the state file back.
        daemon?.send(SIGTERM)
        #expect(daemon?.waitForExit(timeout: 10) == 0)
        daemon = try DaemonProcess(configFile: path)
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "drain")
        #expect(HTTPClient.endpoint(adminPort: admin, backends[1].address)["weight"] as? Int == 5)
        #expect(!(try TestClient.answers(port, count: 6)).contains("a"))
        #expect(daemon?.log.contains("2 endpoint override(s) restored") == true)
        withExtendedLifetime(daemon) {}
    }

    @Test func reload_whenAnEndpointGoes_itsOverrideIsForgotten_andDoesNotComeBackWithIt() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let folder = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateFile = folder.appendingPathComponent("state.json").path
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, endpoints: backends.map(\.address), stateFile: stateFile))
        #expect(try HTTPClient.command(adminPort: admin, address: backends[0].address, verb: "state", body: #"{"state":"maintenance"}"#).status == 200)
        try daemon.rewriteConfig(config(port: port, admin: admin, endpoints: [backends[1].address], stateFile: stateFile))
        #expect(Harness.waitUntil(timeout: 5) { generation(admin) == 2 })
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).contains(backends[0].address) == false)
        try daemon.rewriteConfig(config(port: port, admin: admin, endpoints: backends.map(\.address), stateFile: stateFile))
        #expect(Harness.waitUntil(timeout: 5) { generation(admin) == 3 })
        #expect(HTTPClient.endpoint(adminPort: admin, backends[0].address)["admin"] as? String == "ready")
    }

    @Test func start_whenStateFileIsCorrupt_logsAndIgnoresIt() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let folder = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateFile = folder.appendingPathComponent("state.json").path
        try "{\"version\":1,\"endpoints\":[{\"serv".write(toFile: stateFile, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(config: config(port: port, admin: admin, endpoints: [backend.address], stateFile: stateFile))
        #expect(daemon.log.contains("admin.stateFile \(stateFile): ignored"))
        #expect(HTTPClient.endpoint(adminPort: admin, backend.address)["admin"] as? String == "ready")
        #expect(try TestClient(port: port).readLine() == "a")
        // The next change writes a good file over it.
        #expect(try HTTPClient.command(adminPort: admin, address: backend.address, verb: "state", body: #"{"state":"drain"}"#).status == 200)
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).contains("\"drain\""))
    }
}
