/// Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime
/// size M where each endpoint fills the slots of its own permutation of 0..<M in turn, as
/// many turns as its weight asks.
///
/// Design note: the table's size is fixed (`standardSize`), not derived from the endpoint
/// count. An endpoint's permutation depends only on its own name and M, so with M fixed,
/// adding or removing one endpoint of N changes about 1/N of the slots and very few of the
/// others (see the tests for the measured bounds); a size that followed N would give every
/// endpoint a new permutation and reshuffle every client, which is what Kubernetes' ClientIP
/// affinity, Envoy's Maglev and Katran avoid the same way. The table is a pure function of
/// the (name, weight) list: two processes with the same list build the same table whatever
/// their history, because the hashes are fixed FNV-1a, not Swift's per-process `Hasher`.
public struct MaglevTable: Sendable, Equatable {
    /// One endpoint the table is built over.
    public struct Member: Sendable, Equatable {
        /// The endpoint's stable name: its `ip:port`.
        public var name: String
        /// 1-256: the member fills about `weight` times the slots of a weight-1 member.
        public var weight: Int

        public init(name: String, weight: Int = 1) {
            self.name = name
            self.weight = weight
        }
    }

    /// 65,537 slots: the prime the Maglev paper uses for its small table. It keeps at least
    /// 100 slots per endpoint (each endpoint's share within about 1% of its due) up to 655
    /// endpoints, and with 2-byte slots a table costs 128 KiB, built in about a millisecond.
    public static let standardSize = 65_537
    /// Fixed larger sizes for services with more endpoints than `standardSize` serves well
    /// (at least 100 slots each); crossing a tier is the one list change that reshuffles.
    static let largerSizes = [655_373, 6_553_733]
    /// Slots hold 2-byte member indices: members past this count get no slots.
    public static let maximumMembers = Int(UInt16.max) + 1

    /// The members the table was built from, in list order.
    public let members: [Member]
    /// `slots[i]` is an index into `members`. Empty when there are no members.
    public let slots: [UInt16]

    /// A table over `members`, of the fixed size that fits their count.
    public init(members: [Member]) {
        self.members = members
        let count = min(members.count, Self.maximumMembers)
        guard count > 0 else {
            slots = []
            return
        }
        let size = Self.size(forMembers: count)
        let maxWeight = members.prefix(count).map { max(1, $0.weight) }.max() ?? 1
        // Each member's permutation: slot_j = (offset + j * skip) mod size, walked one step
        // at a time. The size is prime, so every skip in 1..<size visits every slot.
        var position = [Int](repeating: 0, count: count)
        var skip = [Int](repeating: 0, count: count)
        var weight = [Int](repeating: 1, count: count)
        var turns = [Int](repeating: 0, count: count)
        for index in 0..<count {
            let name = members[index].name
            position[index] = Int(Self.fnv1a(name, seed: 0x9e37_79b9_7f4a_7c15) % UInt64(size))
            skip[index] = Int(Self.fnv1a(name, seed: 0xc2b2_ae3d_27d4_eb4f) % UInt64(size - 1)) + 1
            weight[index] = max(1, members[index].weight)
        }
        // A bitmap of the slots taken: 8 KiB for the standard size, so the probes (about
        // size × ln(size) of them, most in the last rounds) stay in the L1 cache.
        var table = [UInt16](repeating: 0, count: size)
        var taken = [UInt64](repeating: 0, count: (size + 63) / 64)
        table.withUnsafeMutableBufferPointer { table in
            taken.withUnsafeMutableBufferPointer { taken in
                var filled = 0
                var round = 0
                while true {
                    round += 1
                    for index in 0..<count {
                        // Weighted turns: after `round` rounds a member has had
                        // floor(round * weight / maxWeight) turns, so the heaviest takes one
                        // every round and a member of a third of its weight one every third.
                        if turns[index] * maxWeight >= round * weight[index] { continue }
                        turns[index] += 1
                        let step = skip[index]
                        var slot = position[index]
                        while taken[slot &>> 6] & (1 &<< UInt64(slot & 63)) != 0 {
                            slot &+= step
                            if slot >= size { slot &-= size }
                        }
                        taken[slot &>> 6] |= 1 &<< UInt64(slot & 63)
                        table[slot] = UInt16(truncatingIfNeeded: index)
                        slot &+= step
                        if slot >= size { slot &-= size }
                        position[index] = slot
                        filled += 1
                        if filled == size { return }
                    }
                }
            }
        }
        slots = table
    }

    /// A table over `names`, with `weights` (1 each when nil).
    public init(names: [String], weights: [Int]? = nil) {
        self.init(members: names.indices.map { Member(name: names[$0], weight: weights?[$0] ?? 1) })
    }

    public var size: Int { slots.count }
    public var memberCount: Int { members.count }

    /// The member index of slot `slot`.
    @inline(__always)
    public func member(at slot: Int) -> Int { Int(slots[slot]) }

    /// The slot a client key falls in.
    @inline(__always)
    public func slot(for key: UInt64) -> Int {
        Int(key % UInt64(slots.count))
    }

    /// How many slots each member holds.
    public var shares: [Int] {
        var counts = [Int](repeating: 0, count: members.count)
        for slot in slots { counts[Int(slot)] += 1 }
        return counts
    }

    /// The fixed size for a table of `count` members: `standardSize`, or the first larger
    /// tier that still gives every member 100 slots.
    static func size(forMembers count: Int) -> Int {
        for size in [standardSize] + largerSizes where size >= 100 * count { return size }
        return largerSizes.last!
    }

    /// FNV-1a over the UTF-8 of `text`, mixed with `seed`: stable across processes.
    public static func fnv1a(_ text: String, seed: UInt64 = 0) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        // A final avalanche so that near keys spread over the table.
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}
