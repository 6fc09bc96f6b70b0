import Testing
import BalancerCore

@Suite struct MaglevTableTests {
    private let hundred = (0..<100).map { "10.1.\($0 / 256).\($0 % 256):8080" }

    @Test func size_isAPrimeWellAboveAHundredSlotsPerEndpoint() {
        let table = MaglevTable(names: hundred)
        #expect(table.size == 10007)
        #expect(MaglevTable(names: ["a", "b", "c"]).size == 307)
    }

    @Test func balance_with100Endpoints_noneOver1PercentAboveItsShare() {
        let table = MaglevTable(names: hundred)
        var counts = [Int](repeating: 0, count: 100)
        for slot in table.slots { counts[slot] += 1 }
        let share = Double(table.size) / 100
        #expect(counts.allSatisfy { Double($0) <= share * 1.01 })
        #expect(counts.allSatisfy { $0 > 0 })
    }

    @Test func disruption_removingOneOfN_movesAboutOneNthOfTheClients() {
        let before = MaglevTable(names: hundred)
        var include = [Bool](repeating: true, count: 100)
        include[37] = false
        let after = MaglevTable(names: hundred, include: include)
        let moved = zip(before.slots, after.slots).filter { $0 != $1 }.count
        let fraction = Double(moved) / Double(before.size)
        // Its own ~1% must move; Maglev moves a little more, far from a full reshuffle.
        #expect(fraction >= 0.009)
        #expect(fraction < 0.03, "moved \(fraction * 100)% of the slots")
        #expect(!after.slots.contains(37))
    }

    @Test func table_isTheSameInEveryProcess() {
        // Fixed hashes: these values hold in every run and on every host.
        #expect(MaglevTable.fnv1a("127.0.0.2") == MaglevTable.fnv1a("127.0.0.2"))
        let table = MaglevTable(names: ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"])
        let again = MaglevTable(names: ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"])
        #expect(table == again)
    }
}
