/// A service's listening socket. Accepts a bounded batch per wakeup; when the process runs
/// out of file descriptors it pauses accepting briefly (the connections wait in the
/// kernel's backlog) instead of spinning on a socket that stays readable.
final class Listener {
    static let acceptsPerWakeup = 64
    static let shortagePause = 0.1

    let fd: Int32
    let address: SocketAddress
    private let watcher: IOWatcher
    private let pauseTimer: TimerWatcher
    private var inShortage = false
    private var accepting = false
    var onAccept: (Int32) -> Void = { _ in }

    init(loop: EventLoop, fd: Int32, address: SocketAddress) {
        self.fd = fd
        self.address = address
        watcher = IOWatcher(loop: loop, fd: fd, events: .read, handler: { _ in })
        pauseTimer = TimerWatcher(loop: loop, handler: {})
        watcher.handler = { [unowned self] _ in self.acceptBatch() }
        pauseTimer.handler = { [unowned self] in if self.accepting { self.watcher.start() } }
    }

    var isStarted: Bool { accepting }

    func start() {
        accepting = true
        watcher.start()
    }

    /// Stops accepting; the socket stays open (and keeps queueing) until `close()`.
    func stop() {
        accepting = false
        watcher.stop()
        pauseTimer.stop()
    }

    func close() {
        stop()
        Socket.close(fd)
    }

    private func acceptBatch() {
        for _ in 0..<Self.acceptsPerWakeup {
            do {
                switch try Socket.accept(fd) {
                case .wouldBlock:
                    return
                case .done(let client):
                    if inShortage {
                        inShortage = false
                        Log.notice("listener \(address): accepting again")
                    }
                    onAccept(client)
                    if !accepting { return }
                }
            } catch {
                if error.isLocalResourceShortage {
                    if !inShortage {
                        inShortage = true
                        Log.error("listener \(address): \(error.reason); pausing accepts for \(Int(Self.shortagePause * 1000))ms at a time until descriptors free up")
                    }
                    watcher.stop()
                    pauseTimer.start(after: Self.shortagePause)
                    return
                }
                // ECONNABORTED and the like concern one client only.
                Log.debug("listener \(address): \(error)")
            }
        }
    }
}
