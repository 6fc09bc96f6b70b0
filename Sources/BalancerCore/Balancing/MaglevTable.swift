/// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M
/// where each endpoint fills the slots of its own permutation in turn. The same endpoint
/// names give the same table in every process (the hashes are fixed FNV-1a, not Swift's
/// per-process seeded `Hasher`), and removing an endpoint moves about only its own share.
public struct MaglevTable: Sendable, Equatable {
    /// `slots[i]` is an index into the endpoint list the table was built from.
    public let slots: [Int]
    /// How many endpoints were named (the table gives slots only to those included).
    public let endpointCount: Int

    /// A table for endpoints named `names`, of which only those with `include[i]` get slots.
    /// Its size is the smallest prime of at least 100 slots per endpoint named.
    public init(names: [String], include: [Bool]? = nil) {
        endpointCount = names.count
        let size = Self.prime(atLeast: max(101, 100 * names.count + 1))
        let members = names.indices.filter { include?[$0] ?? true }
        guard !members.isEmpty else {
            slots = []
            return
        }
        var offsets: [Int] = []
        var skips: [Int] = []
        for index in members {
            offsets.append(Int(Self.fnv1a(names[index], seed: 0x9e37_79b9_7f4a_7c15) % UInt64(size)))
            skips.append(Int(Self.fnv1a(names[index], seed: 0xc2b2_ae3d_27d4_eb4f) % UInt64(size - 1)) + 1)
        }
        var table = [Int](repeating: -1, count: size)
        var next = [Int](repeating: 0, count: members.count)
        var filled = 0
        while true {
            for (position, member) in members.enumerated() {
                var slot = (offsets[position] + next[position] * skips[position]) % size
                while table[slot] >= 0 {
                    next[position] += 1
                    slot = (offsets[position] + next[position] * skips[position]) % size
                }
                table[slot] = member
                next[position] += 1
                filled += 1
                if filled == size {
                    slots = table
                    return
                }
            }
        }
    }

    public var size: Int { slots.count }

    /// The slot a client key falls in.
    public func slot(for key: UInt64) -> Int {
        Int(key % UInt64(slots.count))
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

    static func prime(atLeast n: Int) -> Int {
        var candidate = max(2, n)
        while !isPrime(candidate) { candidate += 1 }
        return candidate
    }

    private static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n % 2 == 0 { return n == 2 }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }
}
