import Testing
@testable import BalancerCore

/// Tokens of the poller's registrations: a session that has gone is never found again,
/// not even once its slot holds a newer one.
@Suite struct SessionTableTests {
    final class Thing {}
    typealias Table = SessionTable<Thing>

    @Test func session_afterInsert_isFoundByEitherSidesToken() {
        var table = Table()
        let thing = Thing()
        let token = table.insert(thing)
        #expect(table.session(for: token)?.takeUnretainedValue() === thing)
        #expect(table.session(for: Table.token(token, side: .upstream))?.takeUnretainedValue() === thing)
        #expect(Table.side(of: token) == .downstream)
        #expect(Table.side(of: Table.token(token, side: .upstream)) == .upstream)
        #expect(Table.token(Table.token(token, side: .upstream), side: .downstream) == token)
    }

    @Test func session_afterRemove_isNil_evenWhenItsSlotIsReused() {
        var table = Table()
        let first = Thing()
        let second = Thing()
        let old = table.insert(first)
        table.remove(old)
        #expect(table.session(for: old) == nil)
        let new = table.insert(second)
        // Same slot, new serial: the old token still finds nothing.
        #expect(new & 0xffff_ffff == old & 0xffff_ffff)
        #expect(table.session(for: old) == nil)
        #expect(table.session(for: Table.token(old, side: .upstream)) == nil)
        #expect(table.session(for: new)?.takeUnretainedValue() === second)
        // A stale remove leaves the new one in place.
        table.remove(old)
        #expect(table.session(for: new)?.takeUnretainedValue() === second)
    }

    @Test func session_forATokenNeverGiven_isNil() {
        let table = Table()
        #expect(table.session(for: 0) == nil)
        #expect(table.session(for: 1 << 32 | 8 << 1) == nil)
    }
}
