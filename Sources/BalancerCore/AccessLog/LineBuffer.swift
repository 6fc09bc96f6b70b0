/// A bounded buffer of whole log lines, and its drop rule: a line that does not fit whole
/// is dropped (the caller counts it), never split, and nothing ever waits for room.
///
/// Its storage is reserved once; `hand(over:)` swaps it with an empty one of the writer's,
/// so that neither side copies or allocates per line or per batch.
public struct LineBuffer {
    public let capacity: Int
    public private(set) var bytes: [UInt8] = []
    public private(set) var lines = 0

    public init(capacity: Int) {
        self.capacity = capacity
        bytes.reserveCapacity(capacity)
    }

    public var isEmpty: Bool { lines == 0 }

    /// Appends `line` (one line with its newline) if it fits whole; false when dropped.
    public mutating func append(_ line: [UInt8]) -> Bool {
        guard bytes.count + line.count <= capacity else { return false }
        bytes.append(contentsOf: line)
        lines += 1
        return true
    }

    /// Hands what is buffered over to `other` (an empty array, ideally with `capacity`
    /// reserved) and returns how many lines it holds; this buffer takes `other`'s storage.
    public mutating func hand(over other: inout [UInt8]) -> Int {
        other.removeAll(keepingCapacity: true)
        swap(&bytes, &other)
        if bytes.capacity < capacity { bytes.reserveCapacity(capacity) }
        defer { lines = 0 }
        return lines
    }
}
