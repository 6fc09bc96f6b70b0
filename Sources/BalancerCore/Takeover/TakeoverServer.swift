import Glibc

/// The running daemon's side of a takeover: listens on the takeover socket, hands
/// everything to the process that connects (see `TakeoverMessage` for the exchange), and
/// on SIGUSR2 starts that process itself from its own executable.
///
/// This process owns every socket until the new one has said `committed`: before that,
/// whatever goes wrong (the new process goes away, refuses, hangs, or the time limit
/// passes), what was parked is resumed and serving goes on as if nothing had happened. The
/// exchange runs on the main loop and blocks it, bounded by the time limit: while it runs,
/// the data path is parked anyway.
final class TakeoverServer {
    /// How long a new process has, from its start (SIGUSR2) or its connect, to commit.
    static let timeLimit = 10.0
    /// Connections per `connections` message, within the descriptors a frame may carry.
    static let batchSize = DescriptorChannel.maxDescriptors / 2

    let path: String
    private let loop: EventLoop
    private let workers: Workers
    private var listener: Int32 = -1
    private var watcher: IOWatcher?
    /// What `/stats` shows beyond the connections, taken once every connection is parked.
    var state: () -> TakeoverMessage.State = {
        TakeoverMessage.State(generation: 1, startTime: 0, reloadSuccesses: 0, reloadFailures: 0, overrides: [], services: [])
    }
    /// The admin port's listening socket, handed over with the others.
    var adminSocket: () -> Int32? = { nil }
    /// Called once the new process (`pid`) has committed: it owns everything now.
    var onCommitted: (pid_t) -> Void = { _ in }

    /// The process started on SIGUSR2, until it commits or fails.
    private var successor: pid_t?
    private var successorDeadline: TimerWatcher?
    private var successorStarted = 0.0
    private var childWatcher: ChildWatcher?
    /// The executable and arguments a successor is started with.
    private let executable: String
    private let arguments: [String]

    init(loop: EventLoop, workers: Workers, path: String, executable: String, arguments: [String]) {
        self.loop = loop
        self.workers = workers
        self.path = path
        self.executable = executable
        self.arguments = arguments
    }

    /// The socket's path for a configuration: beside the admin port, named for its address,
    /// in systemd's `RuntimeDirectory` when there is one, else in /tmp.
    static func socketPath(admin: SocketAddress) -> String {
        let directory = getenv("RUNTIME_DIRECTORY").map { String(cString: $0).split(separator: ":").first.map(String.init) ?? "/tmp" } ?? "/tmp"
        let name = String(admin.description.compactMap { character -> Character? in
            switch character {
            case "[", "]": nil
            case ":", "/": "-"
            default: character
            }
        })
        return "\(directory)/balancerd-takeover-\(name).sock"
    }

    func start() throws(SystemError) {
        listener = try DescriptorChannel.listen(path: path)
        let watcher = IOWatcher(loop: loop, fd: listener, events: .read) { [unowned self] _ in self.acceptOne() }
        watcher.start()
        self.watcher = watcher
        Log.info("takeover: listening on \(path)")
    }

    /// Stops listening; `removing` the socket file too (not once a successor has its own there).
    func stop(removing: Bool) {
        watcher?.stop()
        watcher = nil
        if listener >= 0 {
            Socket.close(listener)
            listener = -1
            if removing { unlink(path) }
        }
        childWatcher?.stop()
        successorDeadline?.stop()
    }

    // MARK: SIGUSR2

    /// Starts this daemon's own executable with `--takeover` and the same arguments; it
    /// has `timeLimit` to take over, or it is killed.
    func startSuccessor() {
        if let successor {
            Log.warning("SIGUSR2: a takeover by pid \(successor) is already under way")
            return
        }
        // The watchdog is the new process's to answer once it takes over.
        let environment = ProcessLauncher.currentEnvironment.filter { !$0.hasPrefix("WATCHDOG_PID=") }
        let pid: pid_t
        do throws(SystemError) {
            pid = try ProcessLauncher.spawn(executable, arguments: arguments + (arguments.contains("--takeover") ? [] : ["--takeover"]),
                                            environment: environment)
        } catch {
            Log.error("SIGUSR2: cannot start \(executable): \(error.reason); serving on")
            return
        }
        successor = pid
        successorStarted = DescriptorChannel.now
        Log.notice("SIGUSR2: started \(executable) --takeover (pid \(pid)); it has \(Int(Self.timeLimit)) s to take over")
        let child = ChildWatcher(loop: loop, pid: pid) { [unowned self] status in self.successorExited(status) }
        child.start()
        childWatcher = child
        let timer = TimerWatcher(loop: loop) { [unowned self] in self.successorTimedOut() }
        timer.start(after: Self.timeLimit)
        successorDeadline = timer
    }

    private func successorTimedOut() {
        guard let pid = successor else { return }
        Log.error("takeover: pid \(pid) did not take over within \(Int(Self.timeLimit)) s; killed it, serving on")
        kill(pid, SIGKILL)
    }

    /// A successor that exits before committing failed to take over.
    private func successorExited(_ status: Int32) {
        childWatcher?.stop()
        guard let pid = successor else { return }
        successor = nil
        successorDeadline?.stop()
        let exited = status & 0x7f == 0
        let how = exited ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
        Log.error("takeover: the new process (pid \(pid)) \(how) before taking over; serving on")
    }

    // MARK: The exchange

    private struct Failure: Error {
        var reason: String
        /// The new process said why itself (and exits): it need not be killed.
        var refusedByPeer = false
    }

    private func acceptOne() {
        let channel: DescriptorChannel
        do throws(SystemError) {
            guard let accepted = try DescriptorChannel.accept(listener) else { return }
            channel = accepted
        } catch {
            Log.warning("takeover: accept: \(error)")
            return
        }
        guard let peer = channel.peer, peer.uid == getuid() else {
            Log.error("takeover: refused a connection from another user (uid \(channel.peer.map { String($0.uid) } ?? "?"))")
            return
        }
        handOver(channel, to: peer.pid)
    }

    private func handOver(_ channel: DescriptorChannel, to pid: pid_t) {
        let started = DescriptorChannel.now
        // A successor started on SIGUSR2 has the time limit from its start, not its connect.
        let deadline = (successor == pid ? successorStarted : started) + Self.timeLimit
        var parked = false
        var counts = (listeners: 0, connections: 0)
        do {
            guard case .hello(let version, _) = try receive(channel, deadline) else { throw Failure(reason: "no hello") }
            guard version == TakeoverMessage.version else {
                let reason = "protocol version \(version) is not spoken here (this daemon speaks version \(TakeoverMessage.version))"
                try? channel.send(TakeoverMessage.refused(reason: reason).encoded(), deadline: deadline)
                throw Failure(reason: reason, refusedByPeer: true)
            }
            try send(.welcome(version: TakeoverMessage.version, workers: workers.count), [], channel, deadline)
            Log.notice("takeover: pid \(pid) is taking over; handing over listeners and connections")
            parked = true
            var listeners = workers.pauseForTakeover()
            if let admin = adminSocket() { listeners.append((TakeoverMessage.Listener(kind: .admin, worker: 0), admin)) }
            counts.listeners = listeners.count
            for batch in stride(from: 0, to: listeners.count, by: DescriptorChannel.maxDescriptors) {
                let part = listeners[batch..<min(batch + DescriptorChannel.maxDescriptors, listeners.count)]
                try send(.listeners(part.map(\.0)), part.map(\.1), channel, deadline)
            }
            let connections = workers.parkConnections()
            counts.connections = connections.count
            for batch in stride(from: 0, to: connections.count, by: Self.batchSize) {
                let part = connections[batch..<min(batch + Self.batchSize, connections.count)]
                try send(.connections(part.map(\.0)), part.flatMap(\.1), channel, deadline)
            }
            try send(.state(state()), [], channel, deadline)
            switch try receive(channel, deadline) {
            case .ready: break
            case .refused(let reason): throw Failure(reason: "the new process refused: \(reason)", refusedByPeer: true)
            default: throw Failure(reason: "unexpected message instead of ready")
            }
            try send(.commit, [], channel, deadline)
            guard case .committed = try receive(channel, deadline) else { throw Failure(reason: "unexpected message instead of committed") }
        } catch {
            let reason = (error as? Failure)?.reason ?? "\(error)"
            if parked { workers.resumeParked() }
            // It must not serve what this process keeps: a new process that did not refuse
            // by itself may still be running (hung, or late), so it goes.
            if (error as? Failure)?.refusedByPeer != true { kill(pid, SIGKILL) }
            Log.error("takeover by pid \(pid) failed: \(reason); serving on with everything\(parked ? " (resumed)" : "")")
            return
        }
        successor = nil
        successorDeadline?.stop()
        let elapsed = Int(((DescriptorChannel.now - started) * 1000).rounded())
        Log.notice("takeover: pid \(pid) took over \(counts.listeners) listening socket(s) and \(counts.connections) connection(s) in \(elapsed) ms; exiting")
        onCommitted(pid)
        // After MAINPID= (in onCommitted): the new process sends READY=1 only once this arrives.
        try? send(.released, [], channel, deadline + 1)
    }

    private func send(_ message: TakeoverMessage, _ descriptors: [Int32], _ channel: DescriptorChannel, _ deadline: Double) throws {
        do {
            try channel.send(message.encoded(), attaching: descriptors, deadline: deadline)
        } catch {
            throw Failure(reason: error.errno == ETIMEDOUT ? "not done within \(Int(Self.timeLimit)) s" : "\(error)")
        }
    }

    private func receive(_ channel: DescriptorChannel, _ deadline: Double) throws -> TakeoverMessage {
        let frame: (body: [UInt8], descriptors: [Int32])
        do {
            frame = try channel.receive(deadline: deadline)
        } catch {
            switch error.errno {
            case ETIMEDOUT: throw Failure(reason: "not done within \(Int(Self.timeLimit)) s")
            case ECONNRESET: throw Failure(reason: "the new process went away")
            default: throw Failure(reason: "\(error)")
            }
        }
        frame.descriptors.forEach(Socket.close)
        do {
            return try TakeoverMessage.decode(frame.body)
        } catch {
            throw Failure(reason: "bad message: \(error)")
        }
    }
}
