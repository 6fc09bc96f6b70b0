/// How active-active services spread new connections.
public enum BalancePolicy: String, Sendable, Equatable, CaseIterable {
    /// Smooth weighted round-robin: weights 5,1,1 give a,a,b,a,c,a,a.
    case roundRobin = "round-robin"
    /// The endpoint with the fewest open connections relative to its weight; ties in turn.
    case leastConnections = "least-connections"
    /// Affinity by client address through a Maglev table.
    case sourceIP = "source-ip"
}
