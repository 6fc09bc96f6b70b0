import Foundation
import Testing
@testable import BalancerCore

/// Runtime overrides as a source of the service map, and their state file.
@Suite struct RuntimeOverridesTests {
    private func file() throws -> Config {
        try ConfigFixture.parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints:
              - 127.0.0.1:8081
              - {address: 127.0.0.1:8082, weight: 2}
              - web.test:8080
        """)
    }

    private let answers: [DNSName.Query: DNSRecordSet] = [
        DNSName.Query(kind: .addresses, host: "web.test"): DNSRecordSet([.init(address: SocketAddress.numeric(host: "127.0.0.5", port: 0)!)]),
    ]

    private func key(_ address: String, service: String = "web") -> RuntimeOverrides.Key {
        RuntimeOverrides.Key(service: service, address: address)
    }

    @Test func materialize_withOverrides_setsAdminStateAndWeightOnFileAndDNSEndpoints() throws {
        var overrides = RuntimeOverrides()
        overrides.set(state: .drain, for: key("127.0.0.1:8081"))
        overrides.set(weight: 7, for: key("127.0.0.1:8082"))
        overrides.set(state: .maintenance, for: key("127.0.0.5:8080"))
        let endpoints = ServiceMap.materialize(try file(), answers: answers, overrides: overrides).services[0].endpoints
        #expect(endpoints.map(\.adminState) == [.drain, .ready, .maintenance])
        #expect(endpoints.map(\.weight) == [1, 7, 1])
    }

    @Test func materialize_withoutOverrides_isReadyWithTheFileWeights() throws {
        let endpoints = ServiceMap.materialize(try file(), answers: answers).services[0].endpoints
        #expect(endpoints.map(\.adminState) == [.ready, .ready, .ready])
        #expect(endpoints.map(\.weight) == [1, 2, 1])
    }

    @Test func setReady_forgetsTheStateButKeepsTheWeight() {
        var overrides = RuntimeOverrides()
        overrides.set(state: .drain, for: key("127.0.0.1:8081"))
        overrides.set(state: .ready, for: key("127.0.0.1:8081"))
        #expect(overrides.entries.isEmpty)
        overrides.set(weight: 3, for: key("127.0.0.1:8081"))
        overrides.set(state: .ready, for: key("127.0.0.1:8081"))
        #expect(overrides[key("127.0.0.1:8081")] == .init(state: nil, weight: 3))
    }

    @Test func retained_dropsEntriesOfEndpointsThatWent_butWaitsForNamesNotYetAnswered() throws {
        var overrides = RuntimeOverrides()
        overrides.set(state: .drain, for: key("127.0.0.1:8081"))
        overrides.set(state: .drain, for: key("127.0.0.1:9999"))
        overrides.set(state: .drain, for: key("127.0.0.1:8081", service: "gone"))
        overrides.set(state: .drain, for: key("127.0.0.6:8080"))
        // Before web.test answers, its endpoints may still come: web keeps everything.
        let early = ServiceMap.materialize(try file(), answers: [:])
        #expect(Set(overrides.retained(in: early, answers: [:]).entries.keys) == [key("127.0.0.1:8081"), key("127.0.0.1:9999"), key("127.0.0.6:8080")])
        let answered = ServiceMap.materialize(try file(), answers: answers)
        #expect(Set(overrides.retained(in: answered, answers: answers).entries.keys) == [key("127.0.0.1:8081")])
    }

    @Test func stateFile_roundTrips_andCanonicalizesAddresses() throws {
        var overrides = RuntimeOverrides()
        overrides.set(state: .maintenance, for: key("[::1]:8081"))
        overrides.set(weight: 256, for: key("127.0.0.1:8082"))
        #expect(try RuntimeOverrides.decode(overrides.encoded()) == overrides)
        let written = #"{"version":1,"endpoints":[{"service":"web","address":"[0:0::1]:8081","state":"drain"}]}"#
        #expect(try RuntimeOverrides.decode(Data(written.utf8))[key("[::1]:8081")]?.state == .drain)
    }

    @Test(arguments: ["", "{", #"{"version":2,"endpoints":[]}"#, #"{"version":1,"endpoints":[{"service":"web","address":"x","state":"drain"}]}"#,
                      #"{"version":1,"endpoints":[{"service":"web","address":"127.0.0.1:1","weight":0}]}"#,
                      #"{"version":1,"endpoints":[{"service":"web","address":"127.0.0.1:1","state":"off"}]}"#])
    func stateFile_whenCorrupt_isRejected(text: String) {
        #expect(throws: RuntimeOverrides.DecodeError.self) { try RuntimeOverrides.decode(Data(text.utf8)) }
    }
}
