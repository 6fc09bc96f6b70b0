import Testing
import BalancerCore

@Suite struct BalancePolicyTests {
    private func candidates(weights: [Int], active: [Int]? = nil, up: Set<Int>? = nil) -> [EndpointSelector.Candidate] {
        weights.indices.map { i in
            EndpointSelector.Candidate(isUp: up?.contains(i) ?? true, weight: weights[i], activeConnections: active?[i] ?? 0)
        }
    }

    @Test func roundRobin_withWeights511_isSmooth() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .roundRobin)
        let picks = (0..<14).map { _ in selector.choose(candidates(weights: [5, 1, 1]))! }
        let names = picks.map { ["a", "b", "c"][$0] }
        #expect(names == ["a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"])
    }

    @Test func roundRobin_withEqualWeights_goesInListedOrderFromTheFirst() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .roundRobin)
        let picks = (0..<6).map { _ in selector.choose(candidates(weights: [1, 1, 1]))! }
        #expect(picks == [0, 1, 2, 0, 1, 2])
    }

    @Test func roundRobin_whenAnEndpointIsDown_sharesGoToTheOthersByWeight() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .roundRobin)
        let picks = (0..<8).map { _ in selector.choose(candidates(weights: [3, 5, 1], up: [0, 2]))! }
        #expect(picks.filter { $0 == 0 }.count == 6)
        #expect(picks.filter { $0 == 2 }.count == 2)
        #expect(!picks.contains(1))
    }

    @Test func leastConnections_picksTheFewestRelativeToWeight() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .leastConnections)
        // 4/1 = 4, 6/3 = 2, 3/1 = 3: the second.
        #expect(selector.choose(candidates(weights: [1, 3, 1], active: [4, 6, 3])) == 1)
    }

    @Test func leastConnections_whenTied_takesTurns() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .leastConnections)
        let tied = candidates(weights: [1, 1, 1], active: [2, 2, 2])
        #expect((0..<6).map { _ in selector.choose(tied)! } == [0, 1, 2, 0, 1, 2])
        // A weight-2 endpoint with twice the connections ties with the others too.
        let weighted = candidates(weights: [1, 2, 1], active: [1, 2, 5])
        #expect((0..<4).map { _ in selector.choose(weighted)! } == [0, 1, 0, 1])
    }

    @Test func everyPolicy_skipsExcludedAndDownEndpoints() {
        for policy in BalancePolicy.allCases {
            var selector = EndpointSelector(mode: .activeActive, failback: true, policy: policy)
            selector.maglev = MaglevTable(names: ["a:1", "b:1", "c:1"])
            var list = candidates(weights: [1, 1, 1], up: [0, 2])
            list[0].isExcluded = true
            for key in 0..<20 {
                #expect(selector.choose(list, clientKey: UInt64(key) &* 0x9e37_79b9_7f4a_7c15) == 2, "\(policy)")
            }
        }
    }

    @Test func sourceIP_sameClientAlwaysGetsTheSameEndpoint_andTwoSelectorsAgree() {
        let names = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
        var first = EndpointSelector(mode: .activeActive, failback: true, policy: .sourceIP)
        var second = EndpointSelector(mode: .activeActive, failback: true, policy: .sourceIP)
        first.maglev = MaglevTable(names: names)
        second.maglev = MaglevTable(names: names)
        let list = candidates(weights: [1, 1, 1])
        var seen: Set<Int> = []
        for client in 0..<200 {
            let key = MaglevTable.fnv1a("192.168.1.\(client)")
            let chosen = first.choose(list, clientKey: key)
            #expect(chosen == first.choose(list, clientKey: key))
            #expect(chosen == second.choose(list, clientKey: key))
            seen.insert(chosen!)
        }
        #expect(seen == [0, 1, 2])
    }

    @Test func sourceIP_whenAnEndpointGoesDown_onlyItsClientsMove() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .sourceIP)
        selector.maglev = MaglevTable(names: (0..<5).map { "10.0.0.\($0):80" })
        let all = candidates(weights: [1, 1, 1, 1, 1])
        let keys = (0..<2000).map { MaglevTable.fnv1a("172.16.\($0 / 250).\($0 % 250)") }
        let before = keys.map { selector.choose(all, clientKey: $0)! }
        let oneDown = candidates(weights: [1, 1, 1, 1, 1], up: [0, 1, 3, 4])
        let after = keys.map { selector.choose(oneDown, clientKey: $0)! }
        for (b, a) in zip(before, after) where b != 2 {
            #expect(a == b)
        }
        #expect(!after.contains(2))
    }

    @Test func sourceIP_whenAnEndpointIsExcluded_onlyItsClientsMove_andComeBack() {
        var selector = EndpointSelector(mode: .activeActive, failback: true, policy: .sourceIP)
        selector.maglev = MaglevTable(names: (0..<4).map { "10.0.0.\($0):80" }, weights: [1, 2, 1, 1])
        let keys = (0..<2000).map { MaglevTable.fnv1a("172.17.\($0 / 250).\($0 % 250)") }
        let all = candidates(weights: [1, 2, 1, 1])
        let before = keys.map { selector.choose(all, clientKey: $0)! }
        var full = all
        full[1].isExcluded = true
        let during = keys.map { selector.choose(full, clientKey: $0)! }
        #expect(zip(before, during).allSatisfy { b, d in b == 1 ? d != 1 : d == b })
        // Weight 2 of 5: about 40% of the clients were on it.
        let share = Double(before.filter { $0 == 1 }.count) / Double(keys.count)
        #expect(share > 0.35 && share < 0.45, "\(share)")
        #expect(keys.map { selector.choose(all, clientKey: $0)! } == before)
    }
}
