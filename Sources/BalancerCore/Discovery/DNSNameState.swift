/// What balancerd holds of one name: the answer in force and how resolving it goes.
///
/// A value: `DNSDiscovery` feeds it each outcome and carries out the events it returns
/// (log lines, a new service map). The rules it keeps:
/// - an answer with records replaces the one in force;
/// - a failure (timeout, SERVFAIL, REFUSED, malformed) keeps the answer in force, however
///   long it lasts, and is reported once per outage;
/// - "no such name / no records" keeps the answer in force until it has persisted for
///   `hold`; then the name stands for no endpoint.
struct DNSNameState {
    enum Event: Equatable {
        /// The answer in force changed (a new map is due).
        case changed(from: Int, to: Int)
        /// The first failure of an outage; the answer in force (of `kept` targets) stays.
        case outageBegan(reason: String, kept: Int)
        /// The first success after failures.
        case outageEnded(failures: Int)
        /// The first "not found" of a streak, while the answer of `kept` targets stays.
        case notFoundHeld(reason: String, kept: Int)
        /// "Not found" has persisted for `hold`: the name's endpoints go.
        case removedAfterHold(reason: String)
    }

    /// nil until the name first resolved with records.
    private(set) var inForce: DNSRecordSet?
    /// Unix time of the last answer with records.
    private(set) var lastResolved: Double?
    private(set) var lastError: String?
    /// Consecutive failures (not "not found").
    private(set) var failures = 0
    /// When the current streak of "not found" answers began.
    private(set) var notFoundSince: Double?

    private(set) var successes = 0
    private(set) var failuresTotal = 0
    private(set) var notFoundTotal = 0

    var targets: DNSRecordSet { inForce ?? .empty }

    mutating func resolved(_ answer: DNSRecordSet, at now: Double) -> [Event] {
        successes += 1
        var events: [Event] = []
        if failures > 0 { events.append(.outageEnded(failures: failures)) }
        failures = 0
        notFoundSince = nil
        lastError = nil
        lastResolved = now
        if answer != inForce {
            events.append(.changed(from: inForce?.targets.count ?? 0, to: answer.targets.count))
            inForce = answer
        }
        return events
    }

    mutating func failed(_ reason: String, at now: Double) -> [Event] {
        failuresTotal += 1
        failures += 1
        lastError = reason
        return failures == 1 ? [.outageBegan(reason: reason, kept: targets.targets.count)] : []
    }

    mutating func notFound(_ reason: String, at now: Double, hold: Double) -> [Event] {
        notFoundTotal += 1
        lastError = reason
        var events: [Event] = []
        if failures > 0 { events.append(.outageEnded(failures: failures)) }
        failures = 0
        let since = notFoundSince ?? now
        if notFoundSince == nil {
            notFoundSince = now
            if targets.targets.isEmpty {
                // Nothing to hold: it was never resolved, or is already gone.
                inForce = inForce ?? .empty
                return events
            }
            if hold > 0 {
                events.append(.notFoundHeld(reason: reason, kept: targets.targets.count))
                return events
            }
        }
        if now - since >= hold, !targets.targets.isEmpty {
            events.append(.removedAfterHold(reason: reason))
            events.append(.changed(from: targets.targets.count, to: 0))
            inForce = .empty
        }
        return events
    }
}
