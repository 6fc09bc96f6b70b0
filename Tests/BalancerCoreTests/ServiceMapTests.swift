import Testing
@testable import BalancerCore

/// Building the service map from the file and the answers of its names.
@Suite struct ServiceMapTests {
    private func file(_ endpoints: String) throws -> Config {
        try ConfigLoader.parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints:
        \(endpoints)
        """, path: "test.yaml")
    }

    private func ip(_ host: String, _ port: UInt16 = 0) -> SocketAddress { SocketAddress.numeric(host: host, port: port)! }

    @Test func materialize_listsEachNamesAddressesSorted_inFileOrder() throws {
        let config = try file("""
              - 127.0.0.9:80
              - web.test:8080
              - 127.0.0.8:80
        """)
        let answers: [DNSName.Query: DNSRecordSet] = [
            DNSName.Query(kind: .addresses, host: "web.test"): DNSRecordSet(["::1", "127.0.0.10", "127.0.0.2", "::0.0.0.2"].map { .init(address: ip($0)) }),
        ]
        let endpoints = ServiceMap.materialize(config, answers: answers).services[0].endpoints
        #expect(endpoints.map(\.name) == ["127.0.0.9:80", "127.0.0.2:8080", "127.0.0.10:8080", "[::1]:8080", "[::2]:8080", "127.0.0.8:80"])
        #expect(endpoints.map(\.source) == ["file", "dns:web.test:8080", "dns:web.test:8080", "dns:web.test:8080", "dns:web.test:8080", "file"])
    }

    @Test func materialize_whenANameHasNoAnswerYet_hasOnlyTheFixedEndpoints() throws {
        let config = try file("""
              - web.test:8080
              - 127.0.0.8:80
        """)
        #expect(ServiceMap.materialize(config, answers: [:]).services[0].endpoints.map(\.name) == ["127.0.0.8:80"])
    }

    @Test func materialize_whenAnAddressRepeats_keepsTheFirst() throws {
        let config = try file("""
              - 127.0.0.2:8080
              - web.test:8080
        """)
        let answers: [DNSName.Query: DNSRecordSet] = [
            DNSName.Query(kind: .addresses, host: "web.test"): DNSRecordSet([.init(address: ip("127.0.0.2")), .init(address: ip("127.0.0.3"))]),
        ]
        let endpoints = ServiceMap.materialize(config, answers: answers).services[0].endpoints
        #expect(endpoints.map(\.name) == ["127.0.0.2:8080", "127.0.0.3:8080"])
        #expect(endpoints.map(\.source) == ["file", "dns:web.test:8080"])
    }

    @Test func materialize_srv_takesPortWeightAndPriority_unlessTheFileSetsAWeight() throws {
        let config = try file("""
              - srv: _db._tcp.test
              - {srv: _x._tcp.test, weight: 7, maxConnections: 3}
        """)
        let answers: [DNSName.Query: DNSRecordSet] = [
            DNSName.Query(kind: .service, host: "_db._tcp.test"): DNSRecordSet([
                .init(address: ip("127.0.0.3", 5433), weight: 0, priority: 20),
                .init(address: ip("127.0.0.2", 5432), weight: 900, priority: 10),
            ]),
            DNSName.Query(kind: .service, host: "_x._tcp.test"): DNSRecordSet([.init(address: ip("127.0.0.4", 99), weight: 5, priority: 1)]),
        ]
        let endpoints = ServiceMap.materialize(config, answers: answers).services[0].endpoints
        #expect(endpoints.map(\.name) == ["127.0.0.2:5432", "127.0.0.3:5433", "127.0.0.4:99"])
        #expect(endpoints.map(\.weight) == [256, 1, 7])
        #expect(endpoints.map(\.maxConnections) == [nil, nil, 3])
        #expect(endpoints.map { $0.tier?.priority } == [10, 20, 1])
        #expect(endpoints[0].tier?.group == "srv:_db._tcp.test")
    }

    @Test func recordSet_sortsIPv4NumericallyThenIPv6() {
        let set = DNSRecordSet(["::1", "10.0.0.1", "9.0.0.1", "127.0.0.1"].map { .init(address: ip($0)) })
        #expect(set.targets.map(\.address.host) == ["9.0.0.1", "10.0.0.1", "127.0.0.1", "::1"])
    }
}
