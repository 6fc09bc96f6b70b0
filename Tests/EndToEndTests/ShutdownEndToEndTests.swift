import Glibc
import Testing

@Suite struct ShutdownEndToEndTests {
    @Test func sigterm_stopsAcceptingAtOnceButLetsOpenConnectionsFinish() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]))
        let client = try TestClient(port: port)
        #expect(try client.readLine() == "a")

        daemon.send(SIGTERM)
        // New connections are refused...
        let refused = Harness.waitUntil(timeout: 5) { (try? TestClient(port: port, timeout: 1)) == nil }
        #expect(refused)
        // ...while the open one still carries bytes both ways.
        try client.send("still here")
        client.shutdownWrite()
        #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "still hereeof 10\n")
        // Its end is the last one: the daemon exits cleanly.
        #expect(daemon.waitForExit(timeout: 5) == 0)
        #expect(daemon.log.contains("drain complete"))
    }

    @Test func sigterm_whenConnectionsOutliveDrainTimeout_closesThemAndExits() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["drainTimeout: 500ms"]))
        let client = try TestClient(port: port, timeout: 5)
        #expect(try client.readLine() == "a")
        daemon.send(SIGTERM)
        #expect(daemon.waitForExit(timeout: 5) == 0)
        #expect(client.waitForClose() != nil)
        #expect(daemon.log.contains("drainTimeout passed; closing 1 connections"))
    }

    @Test func sigint_withNoOpenConnections_exitsCleanlyAtOnce() throws {
        let backend = try BackendProcess(name: "a")
        let daemon = try DaemonProcess(config: ConfigText.service(port: Harness.freePort(), endpoints: [backend.address]))
        daemon.send(SIGINT)
        #expect(daemon.waitForExit(timeout: 5) == 0)
    }
}
