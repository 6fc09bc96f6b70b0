import Foundation
import Glibc
import Testing

@Suite struct AdminEndToEndTests {
    /// A daemon with one service in front of backend "a", and its admin port.
    private func start() throws -> (daemon: DaemonProcess, backend: BackendProcess, port: UInt16, admin: UInt16) {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], adminPort: admin))
        return (daemon, backend, port, admin)
    }

    @Test func stats_afterAKnownTransfer_countBytesAndConnectionsExactly() throws {
        let (daemon, backend, port, admin) = try start()
        let payload = [UInt8](repeating: 0x41, count: 100_000)
        for _ in 0..<3 {
            let client = try TestClient(port: port)
            try client.send(payload)
            client.shutdownWrite()
            _ = try client.readToEnd()
        }
        // The daemon closes its side right after relaying the last FIN.
        var service: [String: Any] = [:]
        let settled = Harness.waitUntil(timeout: 5) {
            service = HTTPClient.firstService(adminPort: admin)
            return service["activeConnections"] as? Int == 0
        }
        #expect(settled)
        let reply = "a\n".utf8.count + payload.count + "eof 100000\n".utf8.count
        #expect(service["totalConnections"] as? Int == 3)
        #expect(service["failedConnections"] as? Int == 0)
        #expect(service["bytesIn"] as? Int == 3 * payload.count)
        #expect(service["bytesOut"] as? Int == 3 * reply)
        let endpoint = (service["endpoints"] as? [[String: Any]])?.first ?? [:]
        #expect(endpoint["address"] as? String == backend.address)
        #expect(endpoint["state"] as? String == "up")
        #expect(endpoint["totalConnections"] as? Int == 3)
        #expect(endpoint["bytesIn"] as? Int == 3 * payload.count)
        #expect(endpoint["bytesOut"] as? Int == 3 * reply)
        let metrics = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(metrics.contains("balancerd_bytes_total{service=\"web\",endpoint=\"\(backend.address)\",direction=\"in\"} \(3 * payload.count)\n"))
        #expect(metrics.contains("balancerd_connections_total{service=\"web\",endpoint=\"\(backend.address)\"} 3\n"))
        withExtendedLifetime((daemon, backend)) {}
    }

    @Test func stats_whenNoEndpointIsUp_countFailedConnectionsAndFailedConnects() throws {
        let port = Harness.freePort()
        let admin = Harness.freePort()
        let dead = "127.0.0.1:\(Harness.freePort())"
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [dead], service: ["retries: 0", "healthCheck: off"], adminPort: admin))
        for _ in 0..<2 { _ = try TestClient(port: port, timeout: 2).waitForClose() }
        let service = HTTPClient.firstService(adminPort: admin)
        #expect(service["totalConnections"] as? Int == 2)
        #expect(service["failedConnections"] as? Int == 2)
        let endpoint = (service["endpoints"] as? [[String: Any]])?.first ?? [:]
        #expect(endpoint["failedConnects"] as? Int == 2)
        _ = daemon
    }

    @Test func healthz_404_405_andKeepAliveOverTheWire() throws {
        let (daemon, backend, _, admin) = try start()
        let health = try HTTPClient.get(port: admin, path: "/healthz")
        #expect(health.status == 200 && health.body == "ok")
        #expect(try HTTPClient.get(port: admin, path: "/nowhere").status == 404)
        #expect(try HTTPClient.get(port: admin, path: "/stats", method: "POST").status == 405)
        // Two pipelined requests on one kept-alive connection, answered in order.
        let client = try TestClient(port: admin)
        try client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let both = String(decoding: try client.readToEnd(), as: UTF8.self)
        #expect(both.hasPrefix("HTTP/1.1 200 OK"))
        #expect(both.contains("Connection: keep-alive"))
        #expect(both.contains("HTTP/1.1 404 Not Found"))
        withExtendedLifetime((daemon, backend)) {}
    }

    @Test func metrics_passPromtoolCheck() throws {
        let (daemon, backend, port, admin) = try start()
        _ = try TestClient(port: port).readLine()
        let body = try HTTPClient.get(port: admin, path: "/metrics").body
        #expect(try Harness.promtoolAccepts(body), "promtool rejected the metrics (scripts/test.sh installs it)")
        withExtendedLifetime((daemon, backend)) {}
    }

    @Test func prometheus_scrapesTheAdminPortAndReadsEndpointUp() throws {
        let (daemon, backend, _, admin) = try start()
        let directory = Harness.temporaryDirectory()
        let configFile = directory.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: balancerd
            static_configs:
              - targets: ['127.0.0.1:\(admin)']
        """.write(to: configFile, atomically: true, encoding: .utf8)
        let webPort = Harness.freePort()
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(configFile.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                                "--web.listen-address=127.0.0.1:\(webPort)"]
        prometheus.standardError = FileHandle(forWritingAtPath: "/dev/null")
        prometheus.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try prometheus.run()
        defer {
            prometheus.terminate()
            prometheus.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
        }
        var answer = ""
        let scraped = Harness.waitUntil(timeout: 40) {
            let query = "/api/v1/query?query=balancerd_endpoint_up"
            answer = (try? HTTPClient.get(port: webPort, path: query, timeout: 2).body) ?? ""
            return answer.contains("\"endpoint\":\"\(backend.address)\"")
        }
        #expect(scraped, "Prometheus never returned balancerd_endpoint_up; last answer: \(answer.prefix(300))")
        #expect(answer.contains("\"service\":\"web\""))
        #expect(answer.contains(",\"1\"]"))
        withExtendedLifetime((daemon, backend)) {}
    }

    @Test func garbageOversizedAndSlowRequests_leaveTheDaemonServing() throws {
        let (daemon, backend, port, admin) = try start()
        // Garbage: 400 and a close.
        let garbage = try TestClient(port: admin)
        try garbage.send([UInt8](repeating: 0x07, count: 300) + Array("\r\n\r\n".utf8))
        let reply = String(decoding: try garbage.readToEnd(), as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 400 "))
        // Oversized: 431 and a close.
        let big = try TestClient(port: admin)
        try big.send("GET /stats HTTP/1.1\r\nX-Filler: " + String(repeating: "b", count: 10_000) + "\r\n\r\n")
        #expect(String(decoding: try big.readToEnd(), as: UTF8.self).hasPrefix("HTTP/1.1 431 "))
        // Slow: half a request line, then nothing. Meanwhile everything else answers.
        let slow = try TestClient(port: admin, timeout: 10)
        try slow.send("GET /sta")
        let others = try HTTPClient.get(port: admin, path: "/stats")
        #expect(others.status == 200)
        #expect(try TestClient(port: port).readLine() == "a")
        // The slow one is dropped after the request timeout (5 s) without an answer.
        #expect(slow.waitForClose() == "eof")
        // Garbage on the data port is only relayed: the endpoint sees it, the daemon is fine.
        let junk = try TestClient(port: port)
        try junk.send([UInt8](repeating: 0xff, count: 1000))
        junk.shutdownWrite()
        #expect(try junk.readToEnd().count == "a\n".utf8.count + 1000 + "eof 1000\n".utf8.count)
        #expect(try HTTPClient.get(port: admin, path: "/healthz").body == "ok")
        #expect(daemon.isRunning)
        withExtendedLifetime(backend) {}
    }
}
