/// Chooses the endpoint for a new connection, by index into the service's endpoint list.
///
/// - active-active: by `policy` over the eligible endpoints (round-robin starts with the
///   first listed one).
/// - active-passive: the first endpoint in list order that is up. With `failback: false`
///   the one that took over stays in use until it is down.
///
/// An endpoint is eligible when `isUp` and not `isExcluded` (already tried by this
/// connection, or at its connection limit).
public struct EndpointSelector: Sendable {
    /// What the selector needs to know of each endpoint.
    public struct Candidate: Sendable {
        public var isUp: Bool
        public var isExcluded: Bool
        public var weight: Int
        public var activeConnections: Int

        public init(isUp: Bool, isExcluded: Bool = false, weight: Int = 1, activeConnections: Int = 0) {
            self.isUp = isUp
            self.isExcluded = isExcluded
            self.weight = weight
            self.activeConnections = activeConnections
        }

        var isEligible: Bool { isUp && !isExcluded }
    }

    public let mode: FailoverMode
    public let failback: Bool
    public let policy: BalancePolicy
    /// Smooth weighted round-robin state, one entry per endpoint.
    private var currentWeights: [Int] = []
    /// least-connections: where the turn among ties starts.
    private var cursor = 0
    /// active-passive without failback: the endpoint in use.
    public private(set) var current: Int?
    /// source-ip: the table over every configured endpoint, up or not, built by the owner
    /// when the endpoint list or a weight changes (never per connection). A down endpoint's
    /// clients walk on to the next slots, so only they move, and they come back when it does.
    public var maglev: MaglevTable?

    public init(mode: FailoverMode, failback: Bool, policy: BalancePolicy = .roundRobin) {
        self.mode = mode
        self.failback = failback
        self.policy = policy
    }

    /// `clientKey` is the hash of the client's address (for source-ip).
    public mutating func choose(_ candidates: [Candidate], clientKey: UInt64 = 0) -> Int? {
        guard !candidates.isEmpty else { return nil }
        switch mode {
        case .activePassive:
            return chooseActivePassive(candidates)
        case .activeActive:
            switch policy {
            case .roundRobin: return chooseRoundRobin(candidates)
            case .leastConnections: return chooseLeastConnections(candidates)
            case .sourceIP: return chooseSourceIP(candidates, key: clientKey)
            }
        }
    }

    /// The closure form, for callers with plain up/excluded predicates and weight 1.
    public mutating func choose(count: Int, isUp: (Int) -> Bool, isExcluded: (Int) -> Bool = { _ in false }) -> Int? {
        choose((0..<count).map { Candidate(isUp: isUp($0), isExcluded: isExcluded($0)) })
    }

    private mutating func chooseActivePassive(_ candidates: [Candidate]) -> Int? {
        let first = candidates.indices.first { candidates[$0].isEligible }
        if failback { return first }
        if let current, current < candidates.count, candidates[current].isUp {
            // Still up: stays in use, unless this connection cannot use it.
            return candidates[current].isExcluded ? first : current
        }
        current = first
        return first
    }

    private mutating func chooseRoundRobin(_ candidates: [Candidate]) -> Int? {
        if currentWeights.count != candidates.count {
            currentWeights = [Int](repeating: 0, count: candidates.count)
        }
        var best: Int?
        var total = 0
        for index in candidates.indices where candidates[index].isEligible {
            currentWeights[index] += candidates[index].weight
            total += candidates[index].weight
            if best == nil || currentWeights[index] > currentWeights[best!] { best = index }
        }
        if let best { currentWeights[best] -= total }
        return best
    }

    private mutating func chooseLeastConnections(_ candidates: [Candidate]) -> Int? {
        let count = candidates.count
        var best: Int?
        for step in 0..<count {
            let index = (cursor + step) % count
            let candidate = candidates[index]
            guard candidate.isEligible else { continue }
            if let b = best {
                // active/weight < best.active/best.weight, without division.
                if candidate.activeConnections * candidates[b].weight < candidates[b].activeConnections * candidate.weight {
                    best = index
                }
            } else {
                best = index
            }
        }
        if let best { cursor = best + 1 }
        return best
    }

    private mutating func chooseSourceIP(_ candidates: [Candidate], key: UInt64) -> Int? {
        if maglev?.memberCount != candidates.count {
            // Only an owner that set no table gets here: a table over the positions.
            maglev = MaglevTable(members: candidates.indices.map { .init(name: String($0), weight: candidates[$0].weight) })
        }
        guard let table = maglev, table.size > 0, candidates.contains(where: \.isEligible) else { return nil }
        // The client's own slot, or (when its endpoint cannot take it now) the next slots.
        var slot = table.slot(for: key)
        for _ in 0..<table.size {
            let index = table.member(at: slot)
            if candidates[index].isEligible { return index }
            slot += 1
            if slot == table.size { slot = 0 }
        }
        return nil
    }
}
