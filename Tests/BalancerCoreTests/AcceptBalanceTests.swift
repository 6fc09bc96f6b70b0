import Testing
@testable import BalancerCore

/// When a worker hands a new connection to a less loaded one.
@Suite struct AcceptBalanceTests {
    @Test func target_whenSplitIsEven_keepsTheConnection() {
        #expect(AcceptBalance.target(mine: 25, others: [24]) == nil)
        #expect(AcceptBalance.target(mine: 26, others: [24]) == nil)
    }

    @Test func target_whenThisWorkerHasAnEighthMore_handsToTheLeastLoaded() {
        #expect(AcceptBalance.target(mine: 38, others: [12]) == 0)
        #expect(AcceptBalance.target(mine: 40, others: [36, 30, 39]) == 1)
    }

    @Test func target_withFewConnections_keepsThem_unlessTheGapIsThree() {
        #expect(AcceptBalance.target(mine: 2, others: [0]) == nil)
        #expect(AcceptBalance.target(mine: 3, others: [0]) == 0)
        #expect(AcceptBalance.target(mine: 4, others: [2]) == nil)
    }

    @Test func target_withNoOtherWorker_keepsIt() {
        #expect(AcceptBalance.target(mine: 100, others: []) == nil)
    }
}
