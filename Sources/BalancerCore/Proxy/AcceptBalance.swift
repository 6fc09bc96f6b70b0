/// Which worker serves a new connection, when the kernel's SO_REUSEPORT hash (by addresses
/// and ports, not by load) has left the workers uneven: 50 kept-alive clients were seen
/// split 12 / 38 over two workers, and the busier one set the tail latency.
///
/// The worker that accepted keeps the connection unless another has clearly fewer open:
/// by an eighth of its own count, and at least 3 (so that the ordinary jitter of short
/// connections moves nothing, since a hand-off costs the other loop's wakeup).
enum AcceptBalance {
    /// The index in `others` of the worker to hand the connection to, or nil to keep it.
    /// Loads count open sessions and hand-offs on their way. Generic so that the accept
    /// path can pass its peers' loads lazily, without an array per connection.
    static func target<Loads: Collection<Int>>(mine: Int, others: Loads) -> Int? where Loads.Index == Int {
        guard mine >= 3 else { return nil }
        var least: (index: Int, load: Int)?
        for index in others.indices where least == nil || others[index] < least!.load { least = (index, others[index]) }
        guard let least else { return nil }
        return mine - least.load >= max(3, mine / 8) ? least.index : nil
    }
}
