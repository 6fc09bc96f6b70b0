import Foundation
import Testing

/// The status page in a real browser: headless Debian chromium driven by selenium
/// (scripts/browser/check-status-page.py), against the real daemon and backends.
@Suite struct StatusPageEndToEndTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/browser/check-status-page.py").path

    @Test(arguments: [nil, "s3cret-page-token"])
    func page_listsServices_updatesLive_drainsOnClick_withAQuietConsole(token: String?) throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address),
                                                                  top: token.map { ["  token: \($0)"] } ?? [], adminPort: admin))
        var arguments = [Self.script, "--admin", "127.0.0.1:\(admin)", "--service", "web", "--endpoint", backends[0].address, "--port", String(port)]
        if let token { arguments += ["--token", token] }
        let outcome = try Program.run("/usr/bin/env", ["python3"] + arguments, timeout: 120)
        #expect(outcome.status == 0, "browser check failed:\n\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.stdout.contains("status page OK"))
        withExtendedLifetime(daemon) {}
    }
}
