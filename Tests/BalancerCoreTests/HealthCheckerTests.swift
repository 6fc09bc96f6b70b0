import Testing
import BalancerCore

@Suite struct HealthCheckerTests {
    @Test func startOffsets_for360EndpointsSharingAnInterval_spreadEvenlyOverIt() {
        // 120 services with 3 endpoints each, checked every 2 s.
        let offsets = HealthChecker.startOffsets(intervals: Array(repeating: 2.0, count: 360))
        #expect(offsets.count == 360)
        #expect(offsets.first == 0)
        #expect(offsets.allSatisfy { $0 >= 0 && $0 < 2 })
        let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
        #expect(gaps.allSatisfy { abs($0 - 2.0 / 360) < 1e-9 })
    }

    @Test func startOffsets_whenIntervalsDiffer_spreadsEachGroupOverItsOwnInterval() {
        let offsets = HealthChecker.startOffsets(intervals: [1, 0.5, 1, 0.5, 1, 1])
        #expect(offsets == [0, 0, 0.25, 0.25, 0.5, 0.75])
    }
}
