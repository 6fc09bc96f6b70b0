/// One client of the admin port: reads requests (pipelined ones in order), answers each,
/// keeps the connection alive when the client asks. A request must arrive whole within
/// `requestTimeout` of the previous answer (or of the connection), so a client that sends
/// too slowly or idles is dropped.
final class AdminConnection {
    static let requestTimeout = 5.0
    static let readChunk = 4096

    private unowned let server: AdminServer
    let fd: Int32
    private let watcher: IOWatcher
    private let timer: TimerWatcher
    private let parser = AdminRequestParser()
    /// Bytes received but not yet parsed (at most one read past a request).
    private var pending: [UInt8] = []
    private var output: [UInt8] = []
    private var written = 0
    private var closeAfterWrite = false
    private(set) var closed = false

    init(server: AdminServer, loop: EventLoop, fd: Int32) {
        self.server = server
        self.fd = fd
        watcher = IOWatcher(loop: loop, fd: fd, events: .read, handler: { _ in })
        timer = TimerWatcher(loop: loop, handler: {})
        watcher.handler = { [unowned self] events in self.ready(events) }
        timer.handler = { [unowned self] in self.close() }
    }

    func start() {
        watcher.start()
        timer.start(after: Self.requestTimeout)
    }

    func close() {
        guard !closed else { return }
        closed = true
        watcher.stop()
        timer.stop()
        Socket.close(fd)
        server.connectionClosed(self)
    }

    private func ready(_ events: IOEvents) {
        if events.contains(.write) { writeOutput() }
        if !closed && events.contains(.read) && output.isEmpty { readInput() }
    }

    private func readInput() {
        var chunk = [UInt8](repeating: 0, count: Self.readChunk)
        let count: Int
        do {
            let result = try chunk.withUnsafeMutableBytes { buffer throws(SystemError) in
                try Socket.read(fd, into: buffer.baseAddress!, count: buffer.count)
            }
            switch result {
            case .wouldBlock: return
            case .done(let n): count = n
            }
        } catch {
            close()
            return
        }
        if count == 0 {
            close()
            return
        }
        pending.append(contentsOf: chunk[0..<count])
        parsePending()
    }

    /// Parses what has been received; answers a complete request.
    private func parsePending() {
        guard !pending.isEmpty else { return }
        let outcome = pending.withUnsafeBytes { parser.feed($0) }
        switch outcome {
        case .needMore:
            pending.removeAll(keepingCapacity: true)
        case .request(let request, let consumed):
            pending.removeFirst(consumed)
            respond(server.routes.respond(to: request), keepAlive: request.keepAlive)
        case .malformed(let reason):
            respond(AdminResponse(status: 400, body: "bad request: \(reason)\n"), keepAlive: false)
        case .tooLarge:
            respond(AdminResponse(status: 431, body: "request larger than \(AdminRequestParser.maxRequestBytes) bytes\n"), keepAlive: false)
        }
    }

    private func respond(_ response: AdminResponse, keepAlive: Bool) {
        output = response.serialized(keepAlive: keepAlive)
        written = 0
        closeAfterWrite = !keepAlive
        watcher.watch(.write)
        writeOutput()
    }

    private func writeOutput() {
        while written < output.count {
            do {
                let result = try output.withUnsafeBytes { bytes throws(SystemError) in
                    try Socket.write(fd, from: bytes.baseAddress! + written, count: bytes.count - written)
                }
                switch result {
                case .wouldBlock: return
                case .done(let n): written += n
                }
            } catch {
                close()
                return
            }
        }
        output.removeAll(keepingCapacity: false)
        if closeAfterWrite {
            close()
            return
        }
        // Ready for the next request, which may already be waiting (pipelined).
        parser.reset()
        watcher.watch(.read)
        timer.start(after: Self.requestTimeout)
        parsePending()
    }
}
