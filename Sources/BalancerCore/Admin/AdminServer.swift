/// The admin HTTP port, served on the main loop. Each request's work is small and bounded
/// (render counters, write them), so it never holds up the data path for long.
public final class AdminServer {
    static let maxClients = 256
    static let acceptsPerWakeup = 16

    private let loop: EventLoop
    public let address: SocketAddress
    public let routes: AdminRoutes
    private var fd: Int32 = -1
    private var watcher: IOWatcher?
    private var connections: [Int32: AdminConnection] = [:]

    public init(loop: EventLoop, address: SocketAddress, routes: AdminRoutes) {
        self.loop = loop
        self.address = address
        self.routes = routes
    }

    /// Binds the admin address, or takes `passed` (a socket systemd handed over for it).
    public func bind(passed: Int32? = nil) throws(SystemError) {
        if let passed {
            fd = passed
        } else {
            fd = try Socket.listen(on: address, backlog: 128)
        }
    }

    /// The listening socket (for a takeover to hand over), or nil before `bind`.
    public var socket: Int32? { fd >= 0 ? fd : nil }

    public func start() {
        let watcher = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _ in self.acceptBatch() }
        watcher.start()
        self.watcher = watcher
    }

    /// Closes the listener and every admin connection.
    public func close() {
        watcher?.stop()
        watcher = nil
        if fd >= 0 { Socket.close(fd); fd = -1 }
        for connection in Array(connections.values) { connection.close() }
    }

    private func acceptBatch() {
        for _ in 0..<Self.acceptsPerWakeup {
            let client: Int32
            do {
                guard case .done(let accepted) = try Socket.accept(fd) else { return }
                client = accepted
            } catch {
                Log.debug("admin: \(error)")
                return
            }
            if connections.count >= Self.maxClients {
                Socket.close(client)
                continue
            }
            let connection = AdminConnection(server: self, loop: loop, fd: client)
            connections[client] = connection
            connection.start()
        }
    }

    func connectionClosed(_ connection: AdminConnection) {
        if let removed = connections.removeValue(forKey: connection.fd) {
            loop.retire(removed)
        }
    }
}
