import Testing
@testable import BalancerCore

/// What a session keeps of the poller's edge-triggered reports.
@Suite struct ReadinessTests {
    @Test func note_keepsEachSideApart_untilRemoved() {
        var readiness = Readiness()
        readiness.note([.readable, .peerClosed], on: .upstream)
        readiness.note([.writable], on: .downstream)
        #expect(readiness.readable.contains(.upstream))
        #expect(!readiness.readable.contains(.downstream))
        #expect(readiness.writable.contains(.downstream))
        #expect(!readiness.writable.contains(.upstream))
        #expect(readiness.peerClosed.contains(.upstream))
        readiness.readable.remove(.upstream)
        #expect(!readiness.readable.contains(.upstream))
        // The FIN, once seen, stays seen.
        #expect(readiness.peerClosed.contains(.upstream))
    }

    @Test func forget_whenAnUpstreamSocketIsReplaced_startsItFromNothing() {
        var readiness = Readiness()
        readiness.note([.readable, .writable, .peerClosed, .failed], on: .upstream)
        readiness.note([.readable], on: .downstream)
        readiness.forget(.upstream)
        var expected = Readiness()
        expected.note([.readable], on: .downstream)
        #expect(readiness == expected)
    }
}
