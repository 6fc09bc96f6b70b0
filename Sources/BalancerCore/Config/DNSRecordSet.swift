/// What a name resolved to the last time it did: the endpoints it stands for, in the order
/// every instance agrees on (IPv4 numerically, then IPv6, then port).
public struct DNSRecordSet: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        /// For A/AAAA the port is 0 (each service puts its own); for SRV the record's.
        public var address: SocketAddress
        /// SRV: the record's weight; nil for A/AAAA.
        public var weight: Int?
        /// SRV: the record's priority; nil for A/AAAA.
        public var priority: Int?

        public init(address: SocketAddress, weight: Int? = nil, priority: Int? = nil) {
            self.address = address
            self.weight = weight
            self.priority = priority
        }
    }

    public private(set) var targets: [Target]

    /// Sorts and drops repeats (a target named by two SRV records counts once: the first
    /// by priority).
    public init(_ targets: [Target]) {
        var seen: Set<SocketAddress> = []
        let byPriority = targets.sorted { ($0.priority ?? 0) < ($1.priority ?? 0) }
        self.targets = byPriority.filter { seen.insert($0.address).inserted }.sorted { $0.address < $1.address }
    }

    public static let empty = DNSRecordSet([])
}
