import Foundation
import Glibc
import Testing

/// UDP services through the real daemon: our own UDP endpoints (testbackend's udp-echo and
/// udp-name modes), real dnsmasq servers asked with dig, and iperf3 -u.
@Suite struct UDPEndToEndTests {
    private func backend(_ name: String, mode: String = "udp-name", host: String = "127.0.0.1") throws -> BackendProcess {
        try BackendProcess(name: name, host: host, port: 0, mode: mode)
    }

    private func udpService(port: UInt16, admin: UInt16, endpoints: [String], listen: String = "127.0.0.1", extra: [String] = [],
                            top: [String] = []) -> String {
        var lines = ["admin: {listen: 127.0.0.1:\(admin)}"] + top
        // Quoted: YAML would read a bare [::1]:p as a list.
        lines += ["services:", "  - name: udp", "    listen: \"\(listen):\(port)\"", "    protocol: udp"] + extra.map { "    " + $0 }
        lines.append("    endpoints: [\(endpoints.map { "\"\($0)\"" }.joined(separator: ", "))]")
        return lines.joined(separator: "\n") + "\n"
    }

    private func service(_ admin: UInt16) -> [String: Any] { HTTPClient.firstService(adminPort: admin) }

    @Test func sessions_roundRobinOverEndpoints_andEachStaysOnItsEndpoint() throws {
        let a = try backend("a"), b = try backend("b")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address, b.address]))
        let clients = try (0..<4).map { _ in try UDPClient(port: port) }
        let first = clients.map { $0.ask() }
        #expect(first == ["a", "b", "a", "b"])
        for (client, answer) in zip(clients, first) {
            for _ in 0..<3 { #expect(client.ask() == answer, "a session moved") }
        }
        // The counters move just after the reply leaves: wait for the last one.
        #expect(Harness.waitUntil(timeout: 2) { service(admin)["datagramsOut"] as? Int == 16 })
        let stats = service(admin)
        #expect(stats["protocol"] as? String == "udp")
        #expect(stats["activeConnections"] as? Int == 4)
        #expect(stats["totalConnections"] as? Int == 4)
        #expect(stats["datagramsIn"] as? Int == 16)
        #expect(stats["datagramsOut"] as? Int == 16)
        #expect(stats["droppedDatagrams"] as? Int == 0)
        withExtendedLifetime(daemon) {}
    }

    @Test(arguments: [1, 1_400, 9_000, 65_507])
    func datagrams_ofEverySize_arriveWholeAndUnchanged(size: Int) throws {
        let echo = try backend("e", mode: "udp-echo")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [echo.address]))
        let client = try UDPClient(port: port)
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for _ in 0..<3 {
            client.send(payload)
            #expect(client.receive() == payload)
        }
        withExtendedLifetime(daemon) {}
    }

    @Test func wildcardListener_repliesFromTheAddressEachClientSentTo() throws {
        let a = try backend("a")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address], listen: "0.0.0.0"))
        // Connected sockets: a reply from any other local address would be filtered out.
        for host in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
            let client = try UDPClient(host: host, port: port)
            #expect(client.ask() == "a", "no reply from \(host)")
        }
        withExtendedLifetime(daemon) {}
    }

    @Test func repliesForManyClientsArrivingTogether_eachReachItsClient_fromTheAddressItSentTo_byteExact() throws {
        // An endpoint that answers only once every client has asked, all answers at once:
        // the daemon reads them in one wakeup and sends them in shared batches (40 replies:
        // more than one batch holds).
        let endpoint = try HeldEndpoint()
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [endpoint.address], listen: "0.0.0.0",
                                                          top: ["workers: 1"]))
        let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        // Connected sockets: a reply from any other local address, or to another client, is
        // filtered out by the kernel.
        let clients = try (0..<40).map { try UDPClient(host: hosts[$0 % hosts.count], port: port, timeout: 3) }
        let requests = (0..<40).map { index in Array("client \(index) ".utf8) + (0..<(index * 37)).map { UInt8(truncatingIfNeeded: $0 &* index &+ 1) } }
        for (client, request) in zip(clients, requests) { client.send(request) }
        #expect(endpoint.answerTogether(count: clients.count) == clients.count)
        for (index, client) in clients.enumerated() {
            #expect(client.receive() == Array(requests[index].reversed()), "client \(index) via \(hosts[index % hosts.count])")
        }
        #expect(Harness.waitUntil(timeout: 3) { service(admin)["datagramsOut"] as? Int == 40 })
        let stats = service(admin)
        #expect(stats["datagramsIn"] as? Int == 40)
        #expect(stats["droppedDatagrams"] as? Int == 0)
        #expect(stats["bytesOut"] as? Int == requests.map(\.count).reduce(0, +))
        withExtendedLifetime(daemon) {}
    }

    @Test func sessionTimeout_forgetsASilentClient_andItsNextDatagramChoosesAgain() throws {
        let a = try backend("a"), b = try backend("b")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address, b.address],
                                                          extra: ["sessionTimeout: 300ms"]))
        let client = try UDPClient(port: port)
        #expect(client.ask() == "a")
        #expect(Harness.waitUntil(timeout: 3) { service(admin)["activeConnections"] as? Int == 0 })
        // A new session: round-robin goes on to the next endpoint.
        #expect(client.ask() == "b")
        #expect(service(admin)["totalConnections"] as? Int == 2)
        withExtendedLifetime(daemon) {}
    }

    @Test func portUnreachable_fromAnEndpoint_countsAgainstIt_andTheSessionMoves() throws {
        let live = try backend("b")
        let dead = Harness.freePort()
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: ["127.0.0.1:\(dead)", live.address]))
        let client = try UDPClient(port: port, timeout: 0.5)
        // The first datagram goes to the dead endpoint and is lost; its ICMP answer sends
        // the next one elsewhere.
        client.send("lost")
        _ = client.receive()
        #expect(Harness.waitUntil(timeout: 3) { client.ask() == "b" })
        let endpoints = (service(admin)["endpoints"] as? [[String: Any]]) ?? []
        #expect(endpoints.first?["failedConnects"] as? Int ?? 0 >= 1)
        withExtendedLifetime(daemon) {}
    }

    @Test func healthCheckPort_checksATCPPortOfEachEndpointsHost_andADownEndpointGetsNoNewSession() throws {
        let a = try backend("a", host: "127.0.0.2"), b = try backend("b", host: "127.0.0.3")
        let checkPort = Harness.freePort()
        let checkA = try BackendProcess(name: "check-a", host: "127.0.0.2", port: checkPort)
        let checkB = try BackendProcess(name: "check-b", host: "127.0.0.3", port: checkPort)
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address, b.address],
                                                          extra: ["healthCheck: {port: \(checkPort), interval: 200ms, timeout: 200ms, rise: 1, fall: 1}"]))
        #expect(Harness.waitUntil(timeout: 3) {
            ((service(admin)["endpoints"] as? [[String: Any]]) ?? []).allSatisfy { ($0["checks"] as? [String: Any])?["passed"] as? Int ?? 0 > 0 }
        })
        checkA.kill()
        #expect(Harness.waitUntil(timeout: 3) { ((service(admin)["endpoints"] as? [[String: Any]])?.first?["state"] as? String) == "down" })
        for _ in 0..<4 { #expect(try UDPClient(port: port).ask() == "b") }
        withExtendedLifetime((daemon, checkB)) {}
    }

    @Test func maxConnections_countsSessions_andDropsTheDatagramThatWouldOpenOneMore() throws {
        let a = try backend("a")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address], top: ["limits: {maxConnections: 1}"]))
        let first = try UDPClient(port: port), second = try UDPClient(port: port, timeout: 0.5)
        #expect(first.ask() == "a")
        #expect(second.ask() == nil)
        #expect(first.ask() == "a")
        #expect(service(admin)["droppedDatagrams"] as? Int == 1)
        withExtendedLifetime(daemon) {}
    }

    @Test func reload_keepsTheListenerAndItsSessions() throws {
        let a = try backend("a"), b = try backend("b")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address]))
        let client = try UDPClient(port: port)
        #expect(client.ask() == "a")
        try daemon.rewriteConfig(udpService(port: port, admin: admin, endpoints: [b.address, a.address]))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload (SIGHUP) complete") })
        #expect(client.ask() == "a", "the session keeps its endpoint")
        #expect(try UDPClient(port: port).ask() == "b", "a new session takes the new list")
        withExtendedLifetime(daemon) {}
    }

    @Test func connectionLog_hasOneLinePerSession_endingInSessionTimeout_withDatagramCounts() throws {
        let echo = try backend("e", mode: "udp-echo")
        let port = Harness.freePort(), admin = Harness.freePort()
        let logPath = Harness.temporaryDirectory().appendingPathComponent("access.log").path
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [echo.address], extra: ["sessionTimeout: 300ms"],
                                                          top: ["accessLog: {path: \(logPath)}"]))
        let client = try UDPClient(port: port)
        #expect(client.ask("12345") == "12345")
        #expect(client.ask("123") == "123")
        var lines: [String] = []
        #expect(Harness.waitUntil(timeout: 5) {
            lines = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            return !lines.isEmpty
        })
        let record = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        #expect(record["end"] as? String == "session-timeout")
        #expect(record["service"] as? String == "udp")
        #expect(record["endpoint"] as? String == echo.address)
        #expect(record["datagramsIn"] as? Int == 2)
        #expect(record["datagramsOut"] as? Int == 2)
        #expect(record["bytesIn"] as? Int == 8)
        #expect(record["bytesOut"] as? Int == 8)
        #expect(record["attempts"] as? Int == 1)
        withExtendedLifetime(daemon) {}
    }

    @Test func ipv6_listenerAndEndpoint() throws {
        let a = try backend("a", host: "::1")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address], listen: "[::1]"))
        #expect(try UDPClient(host: "::1", port: port).ask() == "a")
        withExtendedLifetime(daemon) {}
    }

    @Test func tcpAndUDP_shareOneListenAddress() throws {
        let tcp = try BackendProcess(name: "t")
        let udp = try backend("u")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - {name: stream, listen: 127.0.0.1:\(port), endpoints: [\(tcp.address)]}
          - {name: datagrams, listen: 127.0.0.1:\(port), protocol: udp, endpoints: [\(udp.address)]}
        """)
        #expect(try TestClient(port: port).readLine() == "t")
        #expect(try UDPClient(port: port).ask() == "u")
        withExtendedLifetime(daemon) {}
    }

    @Test func sigterm_letsOpenSessionsFinish_thenExits() throws {
        let a = try backend("a")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [a.address], extra: ["sessionTimeout: 1s"]))
        let client = try UDPClient(port: port)
        #expect(client.ask() == "a")
        daemon.send(SIGTERM)
        #expect(Harness.waitUntil(timeout: 2) { daemon.log.contains("draining 1 open connections") })
        #expect(client.ask() == "a", "the open session still relays while draining")
        #expect(try UDPClient(port: port, timeout: 0.5).ask() == nil, "no new session while draining")
        #expect(daemon.waitForExit(timeout: 6) == 0)
    }

    @Test func dnsmasqServers_answerDigThroughBalancerd() throws {
        let one = try DnsmasqProcess(hosts: [("127.0.0.5", "svc.test")])
        let two = try DnsmasqProcess(hosts: [("127.0.0.5", "svc.test")])
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: udpService(port: port, admin: admin, endpoints: [one.nameserver, two.nameserver]))
        for _ in 0..<4 {
            #expect(try Self.dig(port: port, name: "svc.test") == "127.0.0.5")
        }
        #expect(one.queries(name: "svc.test") >= 1 && two.queries(name: "svc.test") >= 1, "both servers were asked")
        withExtendedLifetime(daemon) {}
    }

    @Test func iperf3_udpThroughBalancerd_TCPControlAndUDPDataOnOnePort() throws {
        let serverPort = Harness.freePort()
        let server = try Harness.spawn("/usr/bin/iperf3", ["-s", "-B", "127.0.0.1", "-p", String(serverPort)])
        defer {
            kill(server, SIGKILL)
            var status: Int32 = 0
            waitpid(server, &status, 0)
        }
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          # No health check: iperf3 would take a check's connect for a client.
          - {name: control, listen: 127.0.0.1:\(port), healthCheck: off, endpoints: [127.0.0.1:\(serverPort)]}
          - {name: data, listen: 127.0.0.1:\(port), protocol: udp, endpoints: [127.0.0.1:\(serverPort)]}
        """)
        usleep(200_000)
        let output = try Harness.run("/usr/bin/iperf3", ["-c", "127.0.0.1", "-p", String(port), "-u", "-b", "50M", "-l", "1400", "-t", "1", "--json"], timeout: 15)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let summary = ((json["end"] as? [String: Any])?["sum"] as? [String: Any]) ?? [:]
        #expect(summary["packets"] as? Int ?? 0 > 1000, "iperf3 said: \(output.prefix(500))")
        let datagrams = HTTPClient.service(adminPort: admin, named: "data")
        #expect(datagrams["datagramsIn"] as? Int ?? 0 > 1000)
        withExtendedLifetime(daemon) {}
    }

    // MARK: Tools

    private static func dig(port: UInt16, name: String) throws -> String {
        try Harness.run("/usr/bin/dig", ["@127.0.0.1", "-p", String(port), "+short", "+tries=1", "+time=2", name], timeout: 5)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

}

/// A UDP endpoint in the test itself that holds its answers: it takes a number of requests,
/// then sends every answer (the request, reversed) back to back.
private final class HeldEndpoint {
    let fd: Int32
    let address: String

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        if !bound { throw HarnessError("udp endpoint bind: \(String(cString: strerror(errno)))") }
        address = "127.0.0.1:\(UInt16(bigEndian: local.sin_port))"
    }

    deinit { close(fd) }

    /// Waits for `count` requests (each up to the receive timeout), then answers them all;
    /// returns how many it answered.
    func answerTogether(count: Int) -> Int {
        var held: [(peer: sockaddr_in, answer: [UInt8])] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while held.count < count {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let received = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
            }
            if received < 0 { break }
            held.append((peer, Array(buffer[0..<received].reversed())))
        }
        for (peer, answer) in held {
            var peer = peer
            _ = withUnsafePointer(to: &peer) { address in
                address.withMemoryRebound(to: sockaddr.self, capacity: 1) { to in
                    answer.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, to, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
        }
        return held.count
    }
}
