import CEv
import Glibc

/// Pipes for the zero-copy relay: a pipe is taken only while bytes are in flight and given
/// back empty, so an idle connection holds none. Kept per loop, a few spare at most.
public final class PipePool {
    public struct Pipe {
        public var readEnd: Int32
        public var writeEnd: Int32
    }

    static let spares = 64
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
        return Pipe(readEnd: fds[0], writeEnd: fds[1])
    }

    /// Takes back an empty pipe (one still holding bytes must be closed instead).
    public func give(_ pipe: Pipe) {
        if free.count < Self.spares { free.append(pipe) } else { Self.close(pipe) }
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
