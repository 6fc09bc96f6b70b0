import Testing
@testable import BalancerCore

@Suite struct TakeoverMessageTests {
    static let established = TakeoverMessage.Established(
        service: "web", endpoint: "127.0.0.1:8081", worker: 1,
        fromDownstream: RelayDirection(pending: Array("half a request".utf8), flow: .finPending, splicing: false),
        fromUpstream: RelayDirection(pending: [], flow: .open, splicing: true),
        quietSeconds: 1.25, startedAt: 1_764_633_600.5, attempts: 2, connectMs: 3, bytesIn: 1 << 40, bytesOut: 7)

    static let state = TakeoverMessage.State(
        generation: 4, startTime: 1_764_633_000, reloadSuccesses: 3, reloadFailures: 1, overrides: Array("{}".utf8),
        services: [TakeoverMessage.ServiceFigures(name: "web", counters: [120, 1, 0, 1234, 5678, 0, 0, 0], endpoints: [
            TakeoverMessage.EndpointFigures(address: "127.0.0.1:8081", isUp: false, consecutiveFailures: 3, consecutivePasses: 0,
                                            counters: [60, 2, 10, 3, 600, 3000],
                                            lastCheck: HealthCheckResult(ok: false, reason: "refused", duration: 0.001, at: 1_764_633_601)),
            TakeoverMessage.EndpointFigures(address: "[::1]:8082", isUp: true, consecutiveFailures: 0, consecutivePasses: 9,
                                            counters: [0, 0, 0, 0, 0, 0], lastCheck: nil),
        ])])

    static let messages: [TakeoverMessage] = [
        .hello(version: TakeoverMessage.version, pid: 4242),
        .welcome(version: 1, workers: 2),
        .refused(reason: "protocol version 9 is not spoken here (1)"),
        .listeners([.init(kind: .tcp, worker: 0), .init(kind: .udp, worker: 1), .init(kind: .admin, worker: 0)]),
        .connections([.established(established), .pending(.init(service: nil, listen: "127.0.0.1:30443", worker: 0, bytes: [0x16, 0x03, 0x01])),
                      .pending(.init(service: "db", listen: "[::]:30500", worker: 1, bytes: []))]),
        .state(state),
        .ready, .commit, .committed, .released,
    ]

    @Test(arguments: messages)
    func message_encodedThenDecoded_isTheSameMessage(message: TakeoverMessage) throws {
        #expect(try TakeoverMessage.decode(message.encoded()) == message)
    }

    @Test func connections_countTwoDescriptorsPerEstablishedAndOnePerPending() {
        let message = TakeoverMessage.connections([.established(Self.established), .pending(.init(service: "web", listen: "127.0.0.1:1", worker: 0, bytes: []))])
        #expect(message.descriptorCount == 3)
        #expect(TakeoverMessage.listeners([.init(kind: .tcp, worker: 0)]).descriptorCount == 1)
        #expect(TakeoverMessage.commit.descriptorCount == 0)
    }

    @Test(arguments: messages)
    func message_cutShort_isRefusedNotMisread(message: TakeoverMessage) {
        let bytes = message.encoded()
        for length in 0..<bytes.count {
            #expect(throws: TakeoverMessage.DecodeError.self) { try TakeoverMessage.decode(Array(bytes.prefix(length))) }
        }
    }

    @Test func message_withTrailingBytes_orUnknownType_isRefused() {
        #expect(throws: TakeoverMessage.DecodeError.self) { try TakeoverMessage.decode(TakeoverMessage.ready.encoded() + [0]) }
        #expect(throws: TakeoverMessage.DecodeError.self) { try TakeoverMessage.decode([99]) }
    }

    @Test func hugeLength_isRefusedWithoutAllocating() {
        // A refusal whose reason claims 2^62 bytes.
        let bytes: [UInt8] = [3, 0x40, 0, 0, 0, 0, 0, 0, 0]
        #expect(throws: TakeoverMessage.DecodeError.self) { try TakeoverMessage.decode(bytes) }
    }
}

@Suite struct RelayDirectionTests {
    @Test func newDirection_isOpenWithNothingPending() {
        let direction = RelayDirection()
        #expect(direction.isReading)
        #expect(!direction.finDue)
        #expect(direction.pending.isEmpty && !direction.splicing)
    }

    @Test func finPending_isDueOnlyOnceItsBytesAreWritten() {
        var direction = RelayDirection(pending: [1, 2, 3], flow: .finPending)
        #expect(!direction.isReading)
        #expect(!direction.finDue)
        direction.pending = []
        #expect(direction.finDue)
        direction.flow = .finished
        #expect(!direction.finDue && !direction.isReading)
    }

    @Test func connectionState_rebuiltFromFlows_passesTheRemainingFin() {
        // The client had half-closed, its FIN passed on; the endpoint is still sending.
        var state = ConnectionState(relaying: .finished, .open, attempts: 1, retries: 2)
        #expect(state.phase == .relaying)
        #expect(!state.isReading(from: .downstream))
        #expect(state.isReading(from: .upstream))
        #expect(state.finReceived(from: .upstream, buffered: false) == .close(.completed(closedFirst: .downstream)))
    }

    @Test func connectionState_withAPendingFin_passesItOnceDrained() {
        var state = ConnectionState(relaying: .finPending, .open, attempts: 1, retries: 2)
        #expect(state.flow(from: .downstream) == .finPending)
        #expect(state.drained(from: .downstream) == .shutdownWrite(.upstream))
        #expect(state.flow(from: .downstream) == .finished)
    }
}
