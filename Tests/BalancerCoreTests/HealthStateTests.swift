import Testing
import BalancerCore

@Suite struct HealthStateTests {
    @Test func health_startsUp() {
        #expect(HealthState().isUp)
    }

    @Test func health_whenFallConsecutiveFailures_goesDownOnce() {
        var health = HealthState()
        #expect(health.recordFailure(fall: 3) == nil)
        #expect(health.recordFailure(fall: 3) == nil)
        #expect(health.recordFailure(fall: 3) == .wentDown)
        #expect(health.recordFailure(fall: 3) == nil)
        #expect(!health.isUp)
    }

    @Test func health_whenAPassInterrupts_failuresStartOver() {
        var health = HealthState()
        _ = health.recordFailure(fall: 2)
        _ = health.recordPass(rise: 2)
        #expect(health.recordFailure(fall: 2) == nil)
        #expect(health.isUp)
    }

    @Test func health_whenRiseConsecutivePasses_comesBackUp() {
        var health = HealthState()
        _ = health.recordFailure(fall: 1)
        #expect(health.recordPass(rise: 2) == nil)
        #expect(health.recordPass(rise: 2) == .wentUp)
        #expect(health.isUp)
    }

    @Test func probation_whenChecksOff_letsTheNextFailureDecide() {
        var health = HealthState()
        _ = health.recordFailure(fall: 3)
        _ = health.recordFailure(fall: 3)
        _ = health.recordFailure(fall: 3)
        #expect(health.probation(fall: 3) == .wentUp)
        #expect(health.recordFailure(fall: 3) == .wentDown)
    }
}
