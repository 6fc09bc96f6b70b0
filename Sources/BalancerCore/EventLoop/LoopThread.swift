import Glibc

/// A thread that runs its own event loop until `stop()`: one worker of the data path.
///
/// The thread starts with every signal blocked, so that SIGTERM, SIGHUP and the rest reach
/// the main thread, whose default loop watches them.
final class LoopThread {
    let loop = EventLoop()
    private var thread = pthread_t()
    private var running = false

    init() {
        loop.holdOpen()
    }

    func start() {
        let loop = loop
        thread = Self.spawn { loop.run() }
        running = true
    }

    /// Runs `body` on a new thread that starts with every signal blocked (they belong to
    /// the main loop); join it with `pthread_join`.
    static func spawn(_ body: @escaping () -> Void) -> pthread_t {
        final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            fatalError("pthread_create failed: \(SystemError(errno: rc, operation: "pthread_create").reason)")
        }
        return thread
    }

    /// Stops the loop after the work already posted to it, and waits for the thread to end.
    func stop() {
        guard running else { return }
        running = false
        let loop = loop
        loop.post { loop.stop() }
        pthread_join(thread, nil)
    }
}
