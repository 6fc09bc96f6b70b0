import Testing
import BalancerCore

@Suite struct EndpointSelectorTests {
    private func sequence(_ selector: inout EndpointSelector, count: Int, up: Set<Int>, picks: Int) -> [Int?] {
        (0..<picks).map { _ in selector.choose(count: count, isUp: { up.contains($0) }) }
    }

    @Test func activeActive_whenAllUp_goesRoundInListedOrderFromTheFirst() {
        var selector = EndpointSelector(mode: .activeActive, failback: true)
        #expect(sequence(&selector, count: 3, up: [0, 1, 2], picks: 7) == [0, 1, 2, 0, 1, 2, 0])
    }

    @Test func activeActive_whenOneIsDown_skipsItKeepingTheOrder() {
        var selector = EndpointSelector(mode: .activeActive, failback: true)
        #expect(sequence(&selector, count: 3, up: [0, 2], picks: 4) == [0, 2, 0, 2])
    }

    @Test func activeActive_whenNoneIsUp_choosesNothing() {
        var selector = EndpointSelector(mode: .activeActive, failback: true)
        #expect(selector.choose(count: 3, isUp: { _ in false }) == nil)
        #expect(selector.choose(count: 0, isUp: { _ in true }) == nil)
    }

    @Test func activeActive_whenRetrying_skipsTheTriedEndpointAndMovesOn() {
        var selector = EndpointSelector(mode: .activeActive, failback: true)
        #expect(selector.choose(count: 3, isUp: { _ in true }) == 0)
        // 0 refused: the retry goes to the next one in turn.
        #expect(selector.choose(count: 3, isUp: { _ in true }, isExcluded: { $0 == 0 }) == 1)
        #expect(selector.choose(count: 3, isUp: { _ in true }) == 2)
    }

    @Test func activePassive_withFailback_alwaysPrefersTheFirstUp() {
        var selector = EndpointSelector(mode: .activePassive, failback: true)
        #expect(sequence(&selector, count: 3, up: [0, 1, 2], picks: 3) == [0, 0, 0])
        #expect(sequence(&selector, count: 3, up: [1, 2], picks: 2) == [1, 1])
        #expect(sequence(&selector, count: 3, up: [0, 1, 2], picks: 2) == [0, 0])
    }

    @Test func activePassive_withoutFailback_staysOnTheStandbyUntilItFails() {
        var selector = EndpointSelector(mode: .activePassive, failback: false)
        #expect(sequence(&selector, count: 3, up: [0, 1, 2], picks: 2) == [0, 0])
        #expect(sequence(&selector, count: 3, up: [1, 2], picks: 2) == [1, 1])
        // The preferred one is back: new connections stay on the one in use.
        #expect(sequence(&selector, count: 3, up: [0, 1, 2], picks: 2) == [1, 1])
        // The one in use fails: the first up in list order takes over.
        #expect(sequence(&selector, count: 3, up: [0, 2], picks: 2) == [0, 0])
        #expect(selector.current == 0)
    }

    @Test func activePassive_whenRetrying_triesTheNextWithoutMovingTheActiveOne() {
        var selector = EndpointSelector(mode: .activePassive, failback: false)
        #expect(selector.choose(count: 2, isUp: { _ in true }) == 0)
        #expect(selector.choose(count: 2, isUp: { _ in true }, isExcluded: { $0 == 0 }) == 1)
        #expect(selector.current == 0)
    }
}
