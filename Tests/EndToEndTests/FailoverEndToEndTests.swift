import Glibc
import Testing

@Suite struct FailoverEndToEndTests {
    @Test func connect_whenEndpointRefuses_triesNextEndpointWithoutClientFailure() throws {
        let dead = Harness.freePort()
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: ["127.0.0.1:\(dead)"] + backends.map(\.address), service: ["healthCheck: off"]))
        var names: [String] = []
        for _ in 0..<12 {
            let client = try TestClient(port: port)
            names.append(try client.readLine())
        }
        #expect(names.count == 12)
        #expect(Set(names) == ["a", "b"])
        #expect(daemon.log.contains("endpoint 127.0.0.1:\(dead) down: connection refused (3 consecutive failures)"))
    }

    @Test func connect_whenEveryEndpointIsDead_closesTheClientAtOnce() throws {
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: ["127.0.0.1:\(Harness.freePort())", "127.0.0.1:\(Harness.freePort())"]))
        for _ in 0..<5 {
            // Bounded: a hang would show as nil after one second.
            let client = try TestClient(port: port, timeout: 1)
            let ending = client.waitForClose()
            #expect(ending != nil)
        }
        #expect(daemon.isRunning)
    }

    @Test func connect_whenEndpointNeverAnswers_timesOutAndTriesTheNext() throws {
        // A listener that never accepts, with its backlog filled: further SYNs are dropped,
        // so a connect to it hangs until balancerd's connectTimeout.
        let stuck = try BackendProcess(name: "stuck", mode: "noaccept")
        let fillers = (0..<4).map { _ in Harness.connectWithoutWaiting(port: stuck.port) }
        defer { fillers.forEach { close($0) } }
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [stuck.address, backend.address],
            service: ["connectTimeout: 200ms", "retries: 1", "healthCheck: off"]))
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a")
        #expect(daemon.log.contains("connect to \(stuck.address) failed: connect timed out"))
    }
}
