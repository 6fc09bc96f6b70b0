import CEv
import Glibc

/// Pipes for the zero-copy relay: a pipe is taken only while bytes are in flight and given
/// back empty, so an idle connection holds none. Kept per loop, a few spare at most.
public final class PipePool {
    public struct Pipe {
        public var readEnd: Int32
        public var writeEnd: Int32
        /// Bytes it holds at most: what one splice into it may move.
        public var capacity: Int
    }

    /// Spare pipes kept per loop. Pipe sizes count against the user's pipe pages
    /// (fs.pipe-user-pages-soft, 64 MiB by default), so spares are few.
    static let spares = 16
    /// The size asked for each pipe. Larger than the default 64 KiB: a bulk transfer moves
    /// as much per splice as the socket has queued, and measured on iperf3 through the
    /// proxy, 256 KiB-1 MiB pipes cost about a quarter less CPU per GB than 64 KiB ones.
    /// Past the user's soft limit the kernel refuses the size; the pipe keeps its default.
    static let preferredCapacity: Int32 = 512 * 1024
    private var free: [Pipe] = []

    public init() {}

    deinit {
        for pipe in free { Self.close(pipe) }
    }

    /// A pipe (non-blocking, close-on-exec), or nil when none can be made (EMFILE…).
    public func take() -> Pipe? {
        if let pipe = free.popLast() { return pipe }
        var fds: [Int32] = [-1, -1]
        guard cev_pipe2(&fds, O_NONBLOCK | O_CLOEXEC) == 0 else { return nil }
        let size = cev_set_pipe_size(fds[1], Self.preferredCapacity)
        // Refused: the default size (a splice asking more than a pipe holds just moves less).
        return Pipe(readEnd: fds[0], writeEnd: fds[1], capacity: size > 0 ? Int(size) : 65536)
    }

    /// Takes back an empty pipe (one still holding bytes must be closed instead).
    public func give(_ pipe: Pipe) {
        if free.count < Self.spares { free.append(pipe) } else { Self.close(pipe) }
    }

    /// Reads out up to `count` bytes a pipe holds (for a takeover, which hands them over as
    /// plain bytes). `read`, not `Socket.read`: `recv` refuses a pipe.
    public static func readOut(_ pipe: Pipe, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(pipe.readEnd, $0.baseAddress! + got, count - got) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        return Array(bytes.prefix(got))
    }

    public static func close(_ pipe: Pipe) {
        Glibc.close(pipe.readEnd)
        Glibc.close(pipe.writeEnd)
    }
}

extension Socket {
    /// Moves up to `count` bytes between two descriptors without copying them through user
    /// space (one side must be a pipe).
    @inline(__always)
    public static func splice(from source: Int32, to destination: Int32, count: Int) throws(SystemError) -> IOResult<Int> {
        try syscall("splice") { cev_splice(source, destination, count, CEV_SPLICE_F_MOVE | CEV_SPLICE_F_NONBLOCK) }
    }
}
