/// Bytes read from one side that the other side could not take yet.
///
/// Empty (and holding no memory) almost always: the relay writes what it reads straight
/// from the loop's shared buffer, and only a short write leaves a remainder here. While it
/// is not empty the source side is not read (backpressure), so it never exceeds one read.
struct PendingBytes: ~Copyable {
    private var storage: UnsafeMutableRawPointer?
    private var start = 0
    private var end = 0

    var isEmpty: Bool { start == end }
    var count: Int { end - start }

    /// Keeps a copy of `count` bytes at `bytes`. Only called when empty.
    mutating func store(_ bytes: UnsafeRawPointer, count: Int) {
        release()
        let memory = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        memory.copyMemory(from: bytes, byteCount: count)
        storage = memory
        start = 0
        end = count
    }

    /// Writes as much as `fd` takes. Returns the bytes written; frees the memory once empty.
    mutating func flush(to fd: Int32) throws(SystemError) -> Int {
        guard let storage else { return 0 }
        var total = 0
        while start < end {
            switch try Socket.write(fd, from: storage + start, count: end - start) {
            case .done(let n):
                start += n
                total += n
            case .wouldBlock:
                return total
            }
        }
        release()
        return total
    }

    /// A copy of what waits (for a takeover, which hands it to another process).
    var bytes: [UInt8] {
        guard let storage else { return [] }
        return Array(UnsafeRawBufferPointer(start: storage + start, count: end - start))
    }

    mutating func release() {
        storage?.deallocate()
        storage = nil
        start = 0
        end = 0
    }

    deinit { storage?.deallocate() }
}
