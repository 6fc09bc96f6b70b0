import Foundation
import Testing

@Suite struct RelayEndToEndTests {
    /// FNV-1a over the bytes: a checksum to compare what was sent with what came back.
    private func checksum(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// Both relay paths: splice(2) through pipes (the default) and buffered copies.
    static let relayModes = ["splice", "copy"]

    @Test(arguments: relayModes)
    func relay_eightMebibytesEachWay_arriveIntact(mode: String) throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]),
                                       environment: ["BALANCERD_RELAY": mode])
        let size = 8 * 1024 * 1024
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let client = try TestClient(port: port, timeout: 10)
        #expect(try client.readLine() == "a")
        // Write on another thread while this one reads: the echo needs both at once.
        let writer = Thread {
            try? client.send(payload)
            client.shutdownWrite()
        }
        writer.start()
        let received = try client.readToEnd()
        let trailer = Array("eof \(size)\n".utf8)
        #expect(received.count == size + trailer.count)
        #expect(checksum(received.prefix(size)) == checksum(payload))
        #expect(Array(received.suffix(trailer.count)) == trailer)
        _ = daemon
    }

    @Test(arguments: relayModes)
    func relay_whenClientHalfCloses_finReachesEndpointAndReplyStillArrives(mode: String) throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]),
                                       environment: ["BALANCERD_RELAY": mode])
        let client = try TestClient(port: port)
        try client.send("hello")
        client.shutdownWrite()
        // The backend writes "eof 5" only after it has read the FIN the daemon passed on.
        let reply = String(decoding: try client.readToEnd(), as: UTF8.self)
        #expect(reply == "a\nhelloeof 5\n")
        _ = daemon
    }

    /// The endpoint finishes and closes while the relay still holds much of what it sent
    /// for a slow client: its FIN is seen long before the last bytes are read, and nothing
    /// of what comes before it may be taken for the end.
    @Test(arguments: relayModes)
    func relay_toASlowReader_whenTheEndpointClosesEarly_losesNothing(mode: String) throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address]),
                                       environment: ["BALANCERD_RELAY": mode])
        let size = 16 * 1024 * 1024
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let client = try TestClient(port: port, timeout: 30)
        #expect(try client.readLine() == "a")
        let writer = Thread {
            try? client.send(payload)
            client.shutdownWrite()
        }
        writer.start()
        let received = try client.readToEnd(pausingMicroseconds: 1_000)
        let trailer = Array("eof \(size)\n".utf8)
        #expect(received.count == size + trailer.count)
        #expect(checksum(received.prefix(size)) == checksum(payload))
        #expect(Array(received.suffix(trailer.count)) == trailer)
        _ = daemon
    }

    @Test func relay_fiveHundredConcurrentConnections_areAllServed() throws {
        let backends = try ["a", "b"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address)))
        let count = 500
        var clients: [TestClient] = []
        for _ in 0..<count { clients.append(try TestClient(port: port, timeout: 10)) }
        // All 500 are open at once; each is greeted, then echoes its own message.
        var greetings: [String: Int] = [:]
        for client in clients { greetings[try client.readLine(), default: 0] += 1 }
        #expect(greetings == ["a": count / 2, "b": count / 2])
        for (index, client) in clients.enumerated() {
            try client.send("message \(index)")
            client.shutdownWrite()
        }
        var served = 0
        for (index, client) in clients.enumerated() {
            let message = "message \(index)"
            let reply = String(decoding: try client.readToEnd(), as: UTF8.self)
            if reply == "\(message)eof \(message.utf8.count)\n" { served += 1 }
        }
        #expect(served == count)
        _ = daemon
    }

    @Test func relay_whenNothingMovesForIdleTimeout_closesTheConnection() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: [backend.address], service: ["idleTimeout: 300ms"]))
        let client = try TestClient(port: port, timeout: 5)
        #expect(try client.readLine() == "a")
        #expect(client.waitForClose() == "eof")
        _ = daemon
    }
}
