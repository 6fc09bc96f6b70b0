import Glibc
import Synchronization

/// The connection log: one line per client connection when it ends (see `ConnectionRecord`).
///
/// Nothing here is on a loop's I/O path. Each worker formats its line into a scratch
/// buffer of its own and appends it to its own bounded `AccessLogBuffer` (a short lock
/// that only the writer's swap contends for); a line that does not fit is dropped and
/// counted. One writer thread takes each worker's buffer every `flushInterval` (or sooner,
/// when one fills past `wakeThreshold`) by swapping storage, and writes it out with one
/// `write(2)` per batch: a slow disk stalls that thread only, a full one drops lines.
///
/// The main thread opens files (at start, where a failure is a start-up error, and on
/// reload), and asks the writer to reopen on SIGUSR1; the writer alone writes to, swaps
/// and closes the file it has.
public final class AccessLog: @unchecked Sendable {
    public struct Figures: Sendable, Equatable {
        public var written: UInt64 = 0
        public var dropped: UInt64 = 0

        public init(written: UInt64 = 0, dropped: UInt64 = 0) {
            self.written = written
            self.dropped = dropped
        }
    }

    /// Where lines go: a file open for appending, or stderr (not ours to close).
    struct Target {
        let fd: Int32
        let path: String

        var isStderr: Bool { path == AccessLogConfig.stderrPath }

        static func open(_ config: AccessLogConfig) throws(SystemError) -> Target {
            if config.isStderr { return Target(fd: 2, path: config.path) }
            while true {
                let fd = Glibc.open(config.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
                if fd >= 0 { return Target(fd: fd, path: config.path) }
                if errno == EINTR { continue }
                throw SystemError(errno: errno, operation: "open access log \(config.path)")
            }
        }

        func close() {
            if !isStderr { _ = Glibc.close(fd) }
        }
    }

    /// A configuration ready to be put in force (its file already open), or dropped.
    public struct Change {
        fileprivate let config: AccessLogConfig?
        /// nil: keep the file in force.
        fileprivate let opened: Target?

        /// The reload did not go through: closes what was opened for it.
        public func cancel() { opened?.close() }
    }

    static let bufferCapacity = 512 * 1024
    static let wakeThreshold = 64 * 1024
    static let flushInterval = 0.1

    /// One per worker loop, by worker index.
    public let buffers: [AccessLogBuffer]
    let written = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)
    /// In force (main thread).
    public private(set) var config: AccessLogConfig?

    // Guarded by `mutex`; the writer waits on `condition`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = .allocate(capacity: 1)
    private let condition: UnsafeMutablePointer<pthread_cond_t> = .allocate(capacity: 1)
    private var woken = false
    private var stopping = false
    private var reopenRequested = false
    /// A target for the writer to switch to (.some(nil): none, the log was turned off).
    private var nextTarget: Target??

    // The writer thread's own.
    private var target: Target?
    private var spare: [UInt8] = []
    private var failing = false
    private var droppedWhileFailing: UInt64 = 0
    private var thread: pthread_t?

    public init(workers: Int) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        buffers = (0..<max(workers, 1)).map { AccessLogBuffer(worker: $0) }
        for buffer in buffers { buffer.log = self }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public var figures: Figures {
        Figures(written: written.load(ordering: .relaxed), dropped: dropped.load(ordering: .relaxed))
    }

    // MARK: Main thread

    /// Opens `config`'s file for a reload (or the start), without putting it in force. A
    /// file already open for the same path is kept.
    public func prepare(_ next: AccessLogConfig?) throws(SystemError) -> Change {
        guard let next else { return Change(config: nil, opened: nil) }
        if let config, config.path == next.path { return Change(config: next, opened: nil) }
        return Change(config: next, opened: try Target.open(next))
    }

    /// Puts a prepared configuration in force: workers log in its format from their next
    /// line; the writer writes what is buffered to the old file, then switches.
    public func commit(_ change: Change) {
        let before = config
        config = change.config
        for buffer in buffers { buffer.configure(change.config) }
        guard let next = change.config else {
            if before != nil { post { $0.nextTarget = .some(nil) } }
            return
        }
        if let opened = change.opened { post { $0.nextTarget = .some(opened) } }
        if thread == nil { startWriter() }
        if before?.path != next.path {
            Log.notice("access log: \(next.isStderr ? "stderr" : next.path), \(next.format.rawValue)\(next.sample < 1 ? ", sample \(next.sample)" : "")")
        }
    }

    /// At start: a file that cannot be opened is a start-up error.
    public func start(_ config: AccessLogConfig?) throws(SystemError) {
        commit(try prepare(config))
    }

    /// SIGUSR1: the writer opens the file again by its path (after logrotate renamed it),
    /// appending; if that fails it keeps the one it has and logs why.
    public func reopen() {
        guard let config else {
            Log.info("SIGUSR1: no access log is configured; nothing to reopen")
            return
        }
        if config.isStderr {
            Log.info("SIGUSR1: the access log goes to stderr; nothing to reopen")
            return
        }
        post { $0.reopenRequested = true }
    }

    /// Writes out every buffered line and ends the writer thread (at exit).
    public func stop() {
        guard let thread else { return }
        post { $0.stopping = true }
        pthread_join(thread, nil)
        self.thread = nil
    }

    // MARK: Writer thread

    /// Changes the writer's state under its lock and wakes it.
    private func post(_ change: (AccessLog) -> Void) {
        pthread_mutex_lock(mutex)
        change(self)
        woken = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// A worker's buffer filled past `wakeThreshold` (any thread).
    func wake() { post { _ in } }

    private func startWriter() {
        spare.reserveCapacity(Self.bufferCapacity)
        thread = LoopThread.spawn { [self] in self.runWriter() }
    }

    private func runWriter() {
        while true {
            pthread_mutex_lock(mutex)
            if !woken {
                var deadline = timespec()
                clock_gettime(CLOCK_REALTIME, &deadline)
                deadline.tv_nsec += Int(Self.flushInterval * 1e9)
                if deadline.tv_nsec >= 1_000_000_000 {
                    deadline.tv_sec += 1
                    deadline.tv_nsec -= 1_000_000_000
                }
                pthread_cond_timedwait(condition, mutex, &deadline)
            }
            woken = false
            let stop = stopping
            let reopen = reopenRequested
            reopenRequested = false
            let switchTo = nextTarget
            nextTarget = nil
            pthread_mutex_unlock(mutex)

            // What was logged before a switch or a reopen goes to the file it was meant for.
            flushBuffers()
            if let switchTo {
                target?.close()
                target = switchTo
                failing = false
            }
            if reopen { reopenTarget() }
            if stop {
                target?.close()
                target = nil
                return
            }
        }
    }

    private func flushBuffers() {
        for buffer in buffers {
            let lines = buffer.take(into: &spare)
            guard lines > 0 else { continue }
            guard let target else {
                // Turned off with lines still buffered from before: nowhere to go.
                dropped.wrappingAdd(UInt64(lines), ordering: .relaxed)
                continue
            }
            write(spare, lines: lines, to: target)
        }
    }

    /// Writes one batch; what the file does not take (a full disk, an I/O error) is
    /// dropped and counted, and a line cut short is taken back off a regular file.
    private func write(_ batch: [UInt8], lines: Int, to target: Target) {
        var done = 0
        var failure: Int32 = 0
        batch.withUnsafeBytes { bytes in
            while done < bytes.count {
                let n = Glibc.write(target.fd, bytes.baseAddress! + done, bytes.count - done)
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    failure = n < 0 ? errno : ENOSPC
                    break
                }
            }
        }
        if done == batch.count {
            written.wrappingAdd(UInt64(lines), ordering: .relaxed)
            if failing {
                failing = false
                Log.notice("access log \(target.path): writing again; \(droppedWhileFailing) line(s) were dropped meanwhile")
            }
            return
        }
        let whole = batch[..<done].count(where: { $0 == UInt8(ascii: "\n") })
        let lastEnd = batch[..<done].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        if done > lastEnd && !target.isStderr {
            let end = lseek(target.fd, 0, SEEK_END)
            if end >= 0 { _ = ftruncate(target.fd, end - off_t(done - lastEnd)) }
        }
        written.wrappingAdd(UInt64(whole), ordering: .relaxed)
        let lost = UInt64(lines - whole)
        dropped.wrappingAdd(lost, ordering: .relaxed)
        if !failing {
            failing = true
            droppedWhileFailing = 0
            Log.warning("access log \(target.path): cannot write: \(SystemError(errno: failure, operation: "write").reason); dropping lines until it can (counted in /stats accessLog.dropped)")
        }
        droppedWhileFailing += lost
    }

    private func reopenTarget() {
        guard let old = target, !old.isStderr else { return }
        do {
            let fresh = try Target.open(AccessLogConfig(path: old.path))
            old.close()
            target = fresh
            failing = false
            Log.notice("access log \(old.path): reopened (SIGUSR1)")
        } catch {
            Log.error("access log \(old.path): cannot reopen: \(error.reason); still writing to the file open before")
        }
    }
}

/// One worker's side of the connection log: its bounded buffer, and the format and sample
/// in force. `record` runs on the worker's thread only; `take` on the writer's.
public final class AccessLogBuffer: @unchecked Sendable {
    let worker: Int
    unowned(unsafe) var log: AccessLog!
    private let lock = Lock()
    // Guarded by `lock`.
    private var pending = LineBuffer(capacity: AccessLog.bufferCapacity)
    private var wakeSent = false
    /// 0: off; 1: json; 2: text. Set by the main thread.
    private let mode = Atomic<Int>(0)
    /// A success is logged when a 32-bit random draw is below this (2^32: always).
    private let sampleThreshold = Atomic<Int>(1 << 32)
    // The worker thread's own.
    private var scratch: [UInt8] = []
    private var random: UInt64

    init(worker: Int) {
        self.worker = worker
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        random = ((UInt64(truncatingIfNeeded: spec.tv_nsec) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(worker)) | 1
        scratch.reserveCapacity(1024)
    }

    /// Whether lines are logged now (a session then reads its client's address at start).
    var isOn: Bool { mode.load(ordering: .relaxed) != 0 }

    func configure(_ config: AccessLogConfig?) {
        sampleThreshold.store(Int(((config?.sample ?? 1) * 4_294_967_296).rounded()), ordering: .relaxed)
        mode.store(config.map { $0.format == .json ? 1 : 2 } ?? 0, ordering: .relaxed)
    }

    /// Logs the line of a connection that ended: sampled if it is a success, formatted off
    /// the lock, appended whole or dropped.
    func record(_ record: ConnectionRecord) {
        let mode = mode.load(ordering: .relaxed)
        guard mode != 0 else { return }
        if record.end.isSampled {
            let threshold = sampleThreshold.load(ordering: .relaxed)
            if threshold <= 0 { return }
            if threshold < 1 << 32 {
                // xorshift64*: a few instructions, no system call.
                random ^= random >> 12
                random ^= random << 25
                random ^= random >> 27
                if Int((random &* 0x2545_F491_4F6C_DD1D) >> 32) >= threshold { return }
            }
        }
        scratch.removeAll(keepingCapacity: true)
        ConnectionLogFormat.append(record, as: mode == 1 ? .json : .text, to: &scratch)
        let (kept, wake) = lock.withLock { () -> (Bool, Bool) in
            guard pending.append(scratch) else { return (false, false) }
            guard !wakeSent, pending.bytes.count >= AccessLog.wakeThreshold else { return (true, false) }
            wakeSent = true
            return (true, true)
        }
        if !kept { log.dropped.wrappingAdd(1, ordering: .relaxed) }
        if wake { log.wake() }
    }

    /// The writer takes what is buffered (swapped with `spare`); returns the line count.
    func take(into spare: inout [UInt8]) -> Int {
        lock.withLock {
            wakeSent = false
            return pending.isEmpty ? 0 : pending.hand(over: &spare)
        }
    }
}
