/// The data path of one event loop: the services' listeners and every open session.
public final class Proxy {
    /// Bytes moved per read; the one relay buffer of the loop is this large.
    static let relayChunk = 64 * 1024

    public let loop: EventLoop
    public private(set) var services: [Service]
    private var listeners: [Listener] = []
    private var sessions: [Int32: Session] = [:]
    /// Sessions closed during the current callbacks, released after them.
    private var closedSessions: [Session] = []
    let relayBuffer: UnsafeMutableRawBufferPointer
    public var maxConnections: Int
    /// Called when the last open session closes (the daemon uses it while draining).
    public var onLastSessionClosed: (() -> Void)?

    public var openConnections: Int { sessions.count }

    public init(loop: EventLoop, config: Config) {
        self.loop = loop
        services = config.services.map(Service.init)
        maxConnections = config.maxConnections
        relayBuffer = .allocate(byteCount: Self.relayChunk, alignment: 64)
    }

    deinit {
        relayBuffer.deallocate()
    }

    /// Binds every service's listen address. On the first failure, closes what was bound
    /// and throws.
    public func bindListeners() throws(SystemError) {
        var bound: [Listener] = []
        for service in services {
            do {
                let fd = try Socket.listen(on: service.config.listen)
                let listener = Listener(loop: loop, fd: fd, address: service.config.listen)
                listener.onAccept = { [unowned self, unowned service] client in self.accepted(client, for: service) }
                bound.append(listener)
            } catch {
                bound.forEach { $0.close() }
                throw error
            }
        }
        listeners = bound
    }

    public func startAccepting() {
        listeners.forEach { $0.start() }
    }

    /// Stops accepting at once and closes the listening sockets.
    public func closeListeners() {
        listeners.forEach { $0.close() }
        listeners.removeAll()
    }

    /// Ends every open session of `service` (every session when nil).
    public func closeSessions(of service: Service? = nil) {
        for session in sessions.values where service == nil || session.service === service {
            session.forceClose()
        }
    }

    public func openConnections(of service: Service) -> Int {
        service.activeConnections
    }

    private func accepted(_ fd: Int32, for service: Service) {
        service.totalConnections += 1
        if sessions.count >= maxConnections {
            service.failedConnections += 1
            Socket.close(fd)
            Log.debug("service \(service.name): connection refused: limits.maxConnections (\(maxConnections)) reached")
            return
        }
        Socket.setNoDelay(fd)
        service.activeConnections += 1
        let session = Session(proxy: self, service: service, downstream: fd)
        sessions[fd] = session
        session.start()
    }

    func sessionClosed(_ session: Session) {
        session.service.activeConnections -= 1
        guard let removed = sessions.removeValue(forKey: session.downstream) else { return }
        if closedSessions.isEmpty {
            loop.afterCallbacks { [unowned self] in self.closedSessions.removeAll(keepingCapacity: true) }
        }
        closedSessions.append(removed)
        if sessions.isEmpty { onLastSessionClosed?() }
    }
}
