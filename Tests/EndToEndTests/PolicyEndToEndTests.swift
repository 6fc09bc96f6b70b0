import Foundation
import Glibc
import Testing

/// Balancing policies, endpoint limits with queueing, and the PROXY protocol.
@Suite struct PolicyEndToEndTests {
    @Test func sourceIP_clientsStickToTheirEndpoint_andTwoDaemonsAgree() throws {
        let backends = try ["a", "b", "c"].map { try BackendProcess(name: $0) }
        let first = Harness.freePort()
        let second = Harness.freePort()
        let extra = ["balance: source-ip", "healthCheck: off"]
        let one = try DaemonProcess(config: ConfigText.service(port: first, endpoints: backends.map(\.address), service: extra))
        let two = try DaemonProcess(config: ConfigText.service(port: second, endpoints: backends.map(\.address), service: extra))
        var chosen: [String: String] = [:]
        for host in 2...13 {
            let source = "127.0.0.\(host)"
            let answers = try (0..<3).map { _ in try TestClient(port: first, source: source).readLine() }
            #expect(Set(answers).count == 1, "\(source) moved: \(answers)")
            chosen[source] = answers[0]
            #expect(try TestClient(port: second, source: source).readLine() == answers[0], "the daemons disagree on \(source)")
        }
        #expect(Set(chosen.values).count >= 2)
        withExtendedLifetime((one, two)) {}
    }

    /// One service whose single endpoint takes one connection at a time, with a queue.
    private func queuedService(port: UInt16, admin: UInt16, endpoint: String, queue: String) -> String {
        """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - name: api
            listen: 127.0.0.1:\(port)
            queue: \(queue)
            endpoints:
              - {address: \(endpoint), maxConnections: 1}
        """
    }

    @Test func maxConnections_whenEndpointIsFull_queuesAndServesInArrivalOrder() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: queuedService(port: port, admin: admin, endpoint: backend.address, queue: "{size: 5, timeout: 10s}"))
        let holder = try TestClient(port: port)
        #expect(try holder.readLine() == "a")
        // Arrival is when the daemon accepts: with several worker loops, two clients that
        // connect back to back may be accepted in either order, so the second waits.
        let second = try TestClient(port: port)
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["queued"] as? Int == 1 })
        let third = try TestClient(port: port)
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["queued"] as? Int == 2 })
        let endpoint = (HTTPClient.firstService(adminPort: admin)["endpoints"] as? [[String: Any]])?.first ?? [:]
        #expect(endpoint["maxConnections"] as? Int == 1)
        #expect(endpoint["weight"] as? Int == 1)
        // Free the slot: the first to arrive is served, the other keeps waiting.
        try holder.send("x")
        holder.shutdownWrite()
        _ = try holder.readToEnd()
        #expect(try second.readLine() == "a")
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["queued"] as? Int == 1 })
        second.shutdownWrite()
        _ = try second.readToEnd()
        #expect(try third.readLine() == "a")
        withExtendedLifetime(daemon) {}
    }

    @Test func queue_whenTimeoutPasses_closesAndCounts() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: queuedService(port: port, admin: admin, endpoint: backend.address, queue: "{size: 1, timeout: 300ms}"))
        let holder = try TestClient(port: port)
        #expect(try holder.readLine() == "a")
        let waiting = try TestClient(port: port, timeout: 5)
        // Wait until it is queued, so the next one finds the queue full.
        #expect(Harness.waitUntil(timeout: 3) { HTTPClient.firstService(adminPort: admin)["queued"] as? Int == 1 })
        let overflow = try TestClient(port: port, timeout: 1)
        #expect(overflow.waitForClose() != nil)
        #expect(waiting.waitForClose() != nil)
        let service = HTTPClient.firstService(adminPort: admin)
        #expect(service["queueTimeouts"] as? Int == 1)
        #expect(service["failedConnections"] as? Int == 2)
        #expect(service["queued"] as? Int == 0)
        withExtendedLifetime((daemon, holder)) {}
    }

    @Test(arguments: ["v1", "v2"])
    func proxyProtocol_endpointSeesTheTrueClientAddress(version: String) throws {
        let backend = try BackendProcess(name: "a", mode: "proxy")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["proxyProtocol: \(version)"]))
        let client = try TestClient(port: port, source: "127.0.0.7")
        #expect(try client.readLine() == "a 127.0.0.7:\(client.localPort)")
        // Client bytes follow the header unchanged.
        try client.send("payload")
        client.shutdownWrite()
        #expect(String(decoding: try client.readToEnd(), as: UTF8.self) == "payloadeof 7\n")
        withExtendedLifetime(daemon) {}
    }

    @Test func proxyProtocolV2_forAnIPv6Client_carriesTheIPv6Address() throws {
        let backend = try BackendProcess(name: "a", mode: "proxy")
        let port = Harness.freePort()
        let config = ConfigText.service(port: port, endpoints: [backend.address], service: ["proxyProtocol: v2"])
            .replacingOccurrences(of: "listen: 127.0.0.1:\(port)", with: "listen: \"[::1]:\(port)\"")
        let daemon = try DaemonProcess(config: config)
        let client = try TestClient(port: port, ipv6: true)
        #expect(try client.readLine() == "a [::1]:\(client.localPort)")
        withExtendedLifetime(daemon) {}
    }

    @Test func proxyProtocol_healthChecksSendTheLocalForm() throws {
        let backend = try BackendProcess(name: "a", mode: "proxy")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(
            port: port, endpoints: [backend.address],
            service: ["proxyProtocol: v2", "healthCheck: {interval: 100ms, timeout: 100ms, rise: 1, fall: 1}"]))
        usleep(500_000)
        // The checks connected and sent LOCAL headers; the endpoint stayed up throughout.
        #expect(!daemon.log.contains("down:"))
        let client = try TestClient(port: port, source: "127.0.0.9")
        #expect(try client.readLine().hasPrefix("a 127.0.0.9:"))
    }
}
