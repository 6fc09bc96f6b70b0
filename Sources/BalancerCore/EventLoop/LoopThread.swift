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
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let context = Unmanaged.passRetained(loop).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeRetainedValue()
            loop.run()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<EventLoop>.fromOpaque(context).release()
            fatalError("pthread_create failed: \(SystemError(errno: rc, operation: "pthread_create").reason)")
        }
        running = true
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
