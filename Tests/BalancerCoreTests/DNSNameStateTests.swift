import Testing
@testable import BalancerCore

/// The rules for one name's answer in force: failures keep it, "not found" only after hold.
@Suite struct DNSNameStateTests {
    private func answer(_ hosts: String...) -> DNSRecordSet {
        DNSRecordSet(hosts.map { .init(address: SocketAddress.numeric(host: $0, port: 0)!) })
    }

    @Test func resolved_whenTheAnswerChanges_reportsIt_andNotWhenItStays() {
        var state = DNSNameState()
        #expect(state.resolved(answer("127.0.0.2"), at: 1) == [.changed(from: 0, to: 1)])
        #expect(state.resolved(answer("127.0.0.2"), at: 2) == [])
        #expect(state.resolved(answer("127.0.0.2", "127.0.0.3"), at: 3) == [.changed(from: 1, to: 2)])
        #expect(state.lastResolved == 3)
    }

    @Test func failed_keepsTheLastAnswerForAnyLength_andReportsTheOutageOnce() {
        var state = DNSNameState()
        _ = state.resolved(answer("127.0.0.2", "127.0.0.3"), at: 0)
        #expect(state.failed("Timeout", at: 5) == [.outageBegan(reason: "Timeout", kept: 2)])
        for second in 6..<1000 { #expect(state.failed("SERVFAIL", at: Double(second)).isEmpty) }
        #expect(state.targets == answer("127.0.0.2", "127.0.0.3"))
        #expect(state.lastError == "SERVFAIL")
        #expect(state.resolved(answer("127.0.0.2", "127.0.0.3"), at: 1000) == [.outageEnded(failures: 995)])
        #expect(state.failuresTotal == 995)
    }

    @Test func notFound_removesTheEndpointsOnlyOnceItHasPersistedForHold() {
        var state = DNSNameState()
        _ = state.resolved(answer("127.0.0.2"), at: 0)
        #expect(state.notFound("NXDOMAIN", at: 10, hold: 30) == [.notFoundHeld(reason: "NXDOMAIN", kept: 1)])
        #expect(state.notFound("NXDOMAIN", at: 39, hold: 30) == [])
        #expect(state.targets.targets.count == 1)
        #expect(state.notFound("NXDOMAIN", at: 40, hold: 30) == [.removedAfterHold(reason: "NXDOMAIN"), .changed(from: 1, to: 0)])
        #expect(state.targets.targets.isEmpty)
        #expect(state.notFound("NXDOMAIN", at: 50, hold: 30) == [])
    }

    @Test func notFound_whenTheNameComesBackWithinHold_nothingIsRemoved() {
        var state = DNSNameState()
        _ = state.resolved(answer("127.0.0.2"), at: 0)
        _ = state.notFound("NXDOMAIN", at: 10, hold: 30)
        #expect(state.resolved(answer("127.0.0.2"), at: 20) == [])
        // A new streak starts its own hold.
        _ = state.notFound("NXDOMAIN", at: 45, hold: 30)
        #expect(state.notFound("NXDOMAIN", at: 60, hold: 30) == [])
        #expect(state.targets.targets.count == 1)
    }

    @Test func notFound_withHoldZero_removesAtOnce() {
        var state = DNSNameState()
        _ = state.resolved(answer("127.0.0.2"), at: 0)
        #expect(state.notFound("no records", at: 1, hold: 0) == [.removedAfterHold(reason: "no records"), .changed(from: 1, to: 0)])
    }

    @Test func failedThenNotFound_endsTheOutage_andStartsTheHold() {
        var state = DNSNameState()
        _ = state.resolved(answer("127.0.0.2"), at: 0)
        _ = state.failed("Timeout", at: 1)
        #expect(state.notFound("NXDOMAIN", at: 2, hold: 5) == [.outageEnded(failures: 1), .notFoundHeld(reason: "NXDOMAIN", kept: 1)])
    }
}
