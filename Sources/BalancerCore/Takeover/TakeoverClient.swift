import Glibc

/// The new process's side of a takeover (`balancerd --takeover`): connects to the running
/// daemon, receives its listening sockets, its connections and its state, and commits once
/// it is ready to serve them all. Until `commit()` returns it serves nothing, so that the
/// running daemon may take everything back.
final class TakeoverClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let channel: DescriptorChannel
    private let deadline: Double
    let path: String
    /// The running daemon's pid, and its number of worker loops (kept here: its listening
    /// sockets are one per worker).
    let peer: pid_t
    private(set) var workers = 1
    /// Listening sockets by address (and transport) and worker.
    private(set) var listeners: [ServiceConfig.ListenKey: [Int: Int32]] = [:]
    private(set) var adminSocket: Int32?
    private(set) var connections: [(TakeoverMessage.Connection, [Int32])] = []
    private(set) var state: TakeoverMessage.State?

    /// Connects to the daemon listening at `path`.
    init(path: String, timeLimit: Double = TakeoverServer.timeLimit) throws(Failure) {
        self.path = path
        deadline = DescriptorChannel.now + timeLimit
        do throws(SystemError) {
            channel = try DescriptorChannel.connect(path: path)
        } catch {
            throw Failure(description: "no running balancerd to take over from: \(error)")
        }
        guard let credentials = channel.peer, credentials.uid == getuid() else {
            throw Failure(description: "\(path) belongs to another user; refusing to take over from it")
        }
        peer = credentials.pid
    }

    /// Says hello and receives everything up to the state. Throws when the running daemon
    /// refuses (a protocol version it does not speak), or on any failure.
    func receiveEverything() throws(Failure) {
        try send(.hello(version: TakeoverMessage.version, pid: getpid()))
        switch try receive().message {
        case .welcome(_, let workers): self.workers = max(1, workers)
        case .refused(let reason): throw Failure(description: "the running balancerd (pid \(peer)) refused: \(reason)")
        default: throw Failure(description: "unexpected answer to hello")
        }
        while state == nil {
            let (message, descriptors) = try receive()
            switch message {
            case .listeners(let entries):
                for (entry, fd) in zip(entries, descriptors) {
                    if entry.kind == .admin {
                        adminSocket = fd
                        continue
                    }
                    guard let address = Socket.localAddress(fd) else {
                        Socket.close(fd)
                        continue
                    }
                    let key = ServiceConfig.ListenKey(transport: entry.kind == .udp ? .udp : .tcp, address: address)
                    listeners[key, default: [:]][entry.worker] = fd
                }
            case .connections(let entries):
                var offset = 0
                for entry in entries {
                    connections.append((entry, Array(descriptors[offset..<offset + entry.descriptorCount])))
                    offset += entry.descriptorCount
                }
            case .state(let received):
                state = received
            default:
                throw Failure(description: "unexpected message during the handover")
            }
        }
    }

    /// Tells the running daemon this process cannot take over, and why.
    func refuse(_ reason: String) {
        try? channel.send(TakeoverMessage.refused(reason: reason).encoded(), deadline: min(deadline, DescriptorChannel.now + 1))
    }

    /// Ready: waits for the running daemon's commit and confirms it. From its return, this
    /// process owns everything handed over.
    func commit() throws(Failure) {
        try send(.ready)
        guard case .commit = try receive().message else { throw Failure(description: "no commit from the running balancerd") }
        try send(.committed)
    }

    /// Waits (briefly) until the previous daemon has told systemd the new main pid.
    func awaitReleased() {
        _ = try? channel.receive(deadline: DescriptorChannel.now + 2)
    }

    private func send(_ message: TakeoverMessage) throws(Failure) {
        do throws(SystemError) {
            try channel.send(message.encoded(), deadline: deadline)
        } catch {
            throw Failure(description: "handover: \(error)")
        }
    }

    private func receive() throws(Failure) -> (message: TakeoverMessage, descriptors: [Int32]) {
        let frame: (body: [UInt8], descriptors: [Int32])
        do throws(SystemError) {
            frame = try channel.receive(deadline: deadline)
        } catch {
            throw Failure(description: error.errno == ETIMEDOUT ? "the handover did not finish within \(Int(TakeoverServer.timeLimit)) s"
                                                            : error.errno == ECONNRESET ? "the running balancerd closed the handover" : "handover: \(error)")
        }
        let message: TakeoverMessage
        do throws(TakeoverMessage.DecodeError) {
            message = try TakeoverMessage.decode(frame.body)
        } catch {
            frame.descriptors.forEach(Socket.close)
            throw Failure(description: "handover: bad message: \(error)")
        }
        guard message.descriptorCount == frame.descriptors.count else {
            frame.descriptors.forEach(Socket.close)
            throw Failure(description: "handover: a message with \(frame.descriptors.count) descriptors, \(message.descriptorCount) expected")
        }
        return (message, frame.descriptors)
    }
}
