import Foundation
import Glibc
import Testing

/// Who may drive the admin port: JSON commands only, from its own origin, with the token when one is set.
@Suite struct AdminSecurityEndToEndTests {
    private func start(top: [String] = []) throws -> (daemon: DaemonProcess, backend: BackendProcess, admin: UInt16) {
        let backend = try BackendProcess(name: "a")
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address], top: top, adminPort: admin))
        return (daemon, backend, admin)
    }

    @Test func post_needsJSONContentType_andItsOwnOrigin() throws {
        let (daemon, backend, admin) = try start()
        let body = #"{"state":"drain"}"#
        func post(_ headers: [String]) throws -> Int {
            try HTTPClient.command(adminPort: admin, address: backend.address, verb: "state", body: body, headers: headers).status
        }
        #expect(try post([]) == 415)
        #expect(try post(["Content-Type: text/plain"]) == 415)
        #expect(try post(["Content-Type: application/json", "Origin: http://evil.example"]) == 403)
        #expect(try post(["Content-Type: application/json", "Origin: http://127.0.0.1:\(Harness.freePort())"]) == 403)
        #expect(HTTPClient.endpoint(adminPort: admin, backend.address)["admin"] as? String == "ready")
        #expect(try post(["Content-Type: application/json", "Origin: http://127.0.0.1:\(admin)"]) == 200)
        #expect(HTTPClient.endpoint(adminPort: admin, backend.address)["admin"] as? String == "drain")
        withExtendedLifetime(daemon) {}
    }

    @Test(arguments: ["token", "tokenFile"])
    func token_isNeededForEveryRequestButHealthz(key: String) throws {
        let folder = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let tokenFile = folder.appendingPathComponent("token").path
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let (daemon, backend, admin) = try start(top: [key == "token" ? "  token: s3cret-token" : "  tokenFile: \(tokenFile)"])
        #expect(try HTTPClient.get(port: admin, path: "/healthz").status == 200)
        #expect(try HTTPClient.get(port: admin, path: "/").status == 200)
        let refused = try HTTPClient.get(port: admin, path: "/stats")
        #expect(refused.status == 401)
        #expect(refused.head.contains("WWW-Authenticate: Bearer"))
        #expect(try HTTPClient.get(port: admin, path: "/metrics").status == 401)
        let wrong = try HTTPClient.request(port: admin, method: "GET", path: "/stats", headers: ["Authorization: Bearer s3cret-tokeN"])
        #expect(wrong.status == 401)
        let right = try HTTPClient.request(port: admin, method: "GET", path: "/stats", headers: ["Authorization: Bearer s3cret-token"])
        #expect(right.status == 200)
        #expect(try HTTPClient.command(adminPort: admin, address: backend.address, verb: "state", body: #"{"state":"drain"}"#).status == 401)
        let command = try HTTPClient.command(adminPort: admin, address: backend.address, verb: "state", body: #"{"state":"drain"}"#,
                                             headers: ["Content-Type: application/json", "Authorization: Bearer s3cret-token"])
        #expect(command.status == 200)
        #expect(command.body.contains("\"admin\":\"drain\""))
        withExtendedLifetime(daemon) {}
    }

    @Test func allowRemote_withoutToken_isAConfigurationError() throws {
        let folder = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("balancerd.yaml").path
        try """
        admin:
          listen: 0.0.0.0:\(Harness.freePort())
          allowRemote: true
        services:
          - {name: web, listen: 127.0.0.1:\(Harness.freePort()), endpoints: [127.0.0.1:8081]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let outcome = try Program.run(Harness.balancerd, ["--check-config", "--config", path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("\(path):3:16: admin.allowRemote: a remote admin port needs admin.token or admin.tokenFile"))
    }
}
