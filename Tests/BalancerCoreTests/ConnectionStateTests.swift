import Testing
import BalancerCore

@Suite struct ConnectionStateTests {
    @Test func connect_whenEndpointRefuses_triesNextEndpointUpToRetries() {
        var state = ConnectionState(retries: 2)
        #expect(state.start() == .connect)
        #expect(state.connectFailed() == .connect)
        #expect(state.connectFailed() == .connect)
        #expect(state.attempts == 3)
        #expect(state.connectFailed() == .close(.connectFailed))
        #expect(state.phase == .closed)
    }

    @Test func connect_whenNoEndpointIsUp_closesAsNoHealthyEndpoint() {
        var state = ConnectionState(retries: 2)
        _ = state.start()
        #expect(state.noEndpoint() == .close(.noHealthyEndpoint))
    }

    @Test func connect_whenRetriesRunOutOfEndpoints_closesAsConnectFailed() {
        var state = ConnectionState(retries: 2)
        _ = state.start()
        _ = state.connectFailed()
        #expect(state.noEndpoint() == .close(.connectFailed))
    }

    @Test func relay_whenClientHalfCloses_passesFinUpstreamThenClosesAfterReply() {
        var state = ConnectionState(retries: 0)
        _ = state.start()
        #expect(state.connected() == .startRelay)
        #expect(state.finReceived(from: .downstream, buffered: false) == .shutdownWrite(.upstream))
        #expect(state.isReading(from: .downstream) == false)
        #expect(state.isReading(from: .upstream))
        #expect(state.finReceived(from: .upstream, buffered: false) == .close(.completed(closedFirst: .downstream)))
    }

    @Test func relay_whenFinArrivesWithBytesBuffered_waitsForTheFlush() {
        var state = ConnectionState(retries: 0)
        _ = state.start()
        _ = state.connected()
        #expect(state.finReceived(from: .upstream, buffered: true) == ConnectionState.Action.none)
        #expect(state.drained(from: .upstream) == .shutdownWrite(.downstream))
        // A second drain of the same direction changes nothing.
        #expect(state.drained(from: .upstream) == ConnectionState.Action.none)
    }

    @Test func relay_whenEitherSideResets_closesBoth() {
        var state = ConnectionState(retries: 0)
        _ = state.start()
        _ = state.connected()
        #expect(state.reset(.upstream) == .close(.reset(.upstream)))
        #expect(state.reset(.downstream) == ConnectionState.Action.none)
    }

    @Test func relay_whenIdleOrDrainDeadline_closes() {
        var idle = ConnectionState(retries: 0)
        _ = idle.start()
        _ = idle.connected()
        #expect(idle.idleTimeout() == .close(.idleTimeout))
        var draining = ConnectionState(retries: 0)
        _ = draining.start()
        #expect(draining.drainDeadline() == .close(.drainDeadline))
        #expect(draining.connected() == ConnectionState.Action.none)
    }

    @Test func closeReason_countsOnlyUnservedClientsAsFailures() {
        #expect(CloseReason.connectFailed.isFailure)
        #expect(CloseReason.noHealthyEndpoint.isFailure)
        #expect(CloseReason.overLimit.isFailure)
        #expect(!CloseReason.completed(closedFirst: .upstream).isFailure)
        #expect(CloseReason.queueFull.isFailure)
        #expect(CloseReason.globalLimit.isFailure)
        #expect(!CloseReason.reset(.upstream).isFailure)
    }
}
