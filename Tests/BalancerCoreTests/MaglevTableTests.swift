import Testing
import BalancerCore

@Suite struct MaglevTableTests {
    private func names(_ count: Int, from first: Int = 0) -> [String] {
        (first..<(first + count)).map { "10.1.\($0 / 256).\($0 % 256):8080" }
    }

    /// Slots whose owner changed between `before` and `after`, counting only slots owned
    /// before and after by endpoints in both lists (by name): the clients that moved although
    /// neither their old nor their new endpoint came or went.
    private func movedBetweenStayingEndpoints(_ before: MaglevTable, _ after: MaglevTable) -> Int {
        let staying = Set(before.members.map(\.name)).intersection(after.members.map(\.name))
        var moved = 0
        for slot in 0..<before.size {
            let old = before.members[before.member(at: slot)].name
            let new = after.members[after.member(at: slot)].name
            if old != new && staying.contains(old) && staying.contains(new) { moved += 1 }
        }
        return moved
    }

    @Test func size_isTheFixedPrime_whateverTheEndpointCount() {
        for count in [1, 3, 4, 10, 100, 655] {
            #expect(MaglevTable(names: names(count)).size == 65_537, "\(count) endpoints")
        }
        // Past 655 endpoints a fixed larger tier keeps 100 slots each.
        #expect(MaglevTable(names: names(656)).size == 655_373)
        #expect(MaglevTable(names: []).size == 0)
    }

    @Test func balance_with100Endpoints_noneOver2PercentAwayFromItsShare() {
        let table = MaglevTable(names: names(100))
        let share = Double(table.size) / 100
        #expect(table.shares.allSatisfy { abs(Double($0) - share) <= share * 0.02 }, "\(table.shares)")
    }

    /// Every removal position for N = 4 and 10, every tenth for N = 100. Maglev moves a
    /// few of the other endpoints' slots (its later fill rounds shift): measured on these
    /// lists, a mean of 0.05% (N=4), 0.44% (N=10), 0.59% (N=100), at worst 1.16%.
    @Test(arguments: [4, 10, 100])
    func remove_oneOfN_movesItsOwnSlots_andUnder1PercentOfTheOthersOnAverage(count: Int) {
        let list = names(count)
        let before = MaglevTable(names: list)
        var fractions: [Double] = []
        for removed in stride(from: 0, to: count, by: count > 10 ? 10 : 1) {
            var shorter = list
            shorter.remove(at: removed)
            let after = MaglevTable(names: shorter)
            let others = before.size - before.shares[removed]
            let fraction = Double(movedBetweenStayingEndpoints(before, after)) / Double(others)
            #expect(fraction < 0.0125, "N=\(count), removing #\(removed): \(fraction * 100)% of the other slots moved")
            #expect(!after.members.contains { $0.name == list[removed] })
            fractions.append(fraction)
        }
        let mean = fractions.reduce(0, +) / Double(fractions.count)
        #expect(mean < 0.01, "N=\(count): on average \(mean * 100)% of the other slots moved")
    }

    @Test(arguments: [4, 10, 100])
    func add_oneToN_takesAboutItsShare_andMovesUnder1PercentOfTheOthers(count: Int) {
        let before = MaglevTable(names: names(count))
        let after = MaglevTable(names: names(count + 1))
        let moved = movedBetweenStayingEndpoints(before, after)
        #expect(Double(moved) < 0.01 * Double(before.size), "N=\(count): \(moved) slots moved between staying endpoints")
        let newShare = Double(after.shares[count]) / Double(after.size)
        let due = 1 / Double(count + 1)
        #expect(abs(newShare - due) < due * 0.05, "the new endpoint holds \(newShare), due \(due)")
    }

    @Test func weight_ofThree_fillsAboutThreeTimesTheSlotsOfWeightOne() {
        let table = MaglevTable(names: names(4), weights: [1, 3, 1, 1])
        let shares = table.shares.map { Double($0) / Double(table.size) }
        #expect(abs(shares[1] - 0.5) < 0.01, "\(shares)")
        for index in [0, 2, 3] { #expect(abs(shares[index] - 1.0 / 6) < 0.01, "\(shares)") }
    }

    @Test func weight_whenOneEndpointsWeightChanges_othersKeepTheirSlots() {
        let before = MaglevTable(names: names(5))
        let after = MaglevTable(names: names(5), weights: [1, 1, 2, 1, 1])
        var movedBetweenOthers = 0
        for slot in 0..<before.size {
            let old = before.member(at: slot), new = after.member(at: slot)
            if old != new && old != 2 && new != 2 { movedBetweenOthers += 1 }
        }
        #expect(Double(movedBetweenOthers) < 0.01 * Double(before.size), "\(movedBetweenOthers) slots moved between the others")
        #expect(abs(Double(after.shares[2]) / Double(after.size) - 2.0 / 6) < 0.01)
    }

    @Test func table_isAFunctionOfTheListAlone() {
        let list = ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
        #expect(MaglevTable(names: list) == MaglevTable(names: list))
        // Built after another history (a longer list first) it is still the same.
        _ = MaglevTable(names: list + ["127.0.0.1:8084"])
        #expect(MaglevTable(names: list).slots == MaglevTable(names: Array(list)).slots)
        // Fixed hashes: the same values in every process and on every host.
        #expect(MaglevTable.fnv1a("127.0.0.2") == 0x0947_152e_d2db_36c0)
        #expect(MaglevTable(names: list).slots.prefix(8).map(Int.init) == [1, 0, 2, 1, 2, 1, 1, 0])
    }
}
