import Testing

@Suite struct RoundRobinEndToEndTests {
    @Test func roundRobin_overThreeEndpoints_followsTheListedOrderExactly() throws {
        let backends = try ["a", "b", "c"].map { try BackendProcess(name: $0) }
        let port = Harness.freePort()
        let daemon = try DaemonProcess(config: ConfigText.service(port: port, endpoints: backends.map(\.address)))
        var names: [String] = []
        for _ in 0..<9 {
            let client = try TestClient(port: port)
            names.append(try client.readLine())
        }
        #expect(names == ["a", "b", "c", "a", "b", "c", "a", "b", "c"])
        _ = daemon
    }
}
