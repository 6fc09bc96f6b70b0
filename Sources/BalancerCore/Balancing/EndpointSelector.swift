/// Chooses the endpoint for a new connection, by index into the service's endpoint list.
///
/// - active-active: round-robin in listed order over the eligible endpoints, starting with
///   the first.
/// - active-passive: the first endpoint in list order that is up. With `failback: false`
///   the one that took over stays in use until it is down.
///
/// `isUp` is the endpoint's health; `isExcluded` marks endpoints already tried by this
/// connection, which a retry skips without counting them as down.
public struct EndpointSelector: Sendable {
    public let mode: FailoverMode
    public let failback: Bool
    private var cursor = 0
    /// active-passive without failback: the endpoint in use.
    public private(set) var current: Int?

    public init(mode: FailoverMode, failback: Bool) {
        self.mode = mode
        self.failback = failback
    }

    public mutating func choose(count: Int, isUp: (Int) -> Bool, isExcluded: (Int) -> Bool = { _ in false }) -> Int? {
        guard count > 0 else { return nil }
        switch mode {
        case .activeActive:
            let start = cursor % count
            for step in 0..<count {
                let index = (start + step) % count
                if isUp(index) && !isExcluded(index) {
                    cursor = index + 1
                    return index
                }
            }
            return nil
        case .activePassive:
            let first = (0..<count).first { isUp($0) && !isExcluded($0) }
            if failback { return first }
            if let current, current < count, isUp(current) {
                // Still up: stays in use, unless this connection already tried it.
                return isExcluded(current) ? first : current
            }
            current = first
            return first
        }
    }
}
