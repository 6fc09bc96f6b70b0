/// An endpoint's up/down state with its rise/fall counting, as a value.
///
/// An endpoint starts up. `fall` consecutive failures take it down; `rise` consecutive
/// passes bring it back. Active checks and failed client connects both feed it.
public struct HealthState: Sendable, Equatable {
    public enum Transition: Sendable, Equatable { case wentDown, wentUp }

    public private(set) var isUp = true
    public private(set) var consecutiveFailures = 0
    public private(set) var consecutivePasses = 0

    public init() {}

    /// A state carried over from another process (a takeover), so that nothing flaps.
    public init(isUp: Bool, consecutiveFailures: Int, consecutivePasses: Int) {
        self.isUp = isUp
        self.consecutiveFailures = consecutiveFailures
        self.consecutivePasses = consecutivePasses
    }

    public mutating func recordFailure(fall: Int) -> Transition? {
        consecutivePasses = 0
        consecutiveFailures += 1
        if isUp && consecutiveFailures >= fall {
            isUp = false
            return .wentDown
        }
        return nil
    }

    public mutating func recordPass(rise: Int) -> Transition? {
        consecutiveFailures = 0
        consecutivePasses += 1
        if !isUp && consecutivePasses >= rise {
            isUp = true
            return .wentUp
        }
        return nil
    }

    /// With active checks off: after its time down, an endpoint is eligible again on
    /// probation, so that the next connect decides (one more failure takes it down).
    public mutating func probation(fall: Int) -> Transition? {
        guard !isUp else { return nil }
        isUp = true
        consecutivePasses = 0
        consecutiveFailures = max(0, fall - 1)
        return .wentUp
    }
}
