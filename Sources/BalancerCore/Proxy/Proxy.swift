import Glibc

/// The data path of one event loop: the services' listeners and every open session.
public final class Proxy {
    /// Bytes moved per read; the one relay buffer of the loop is this large.
    static let relayChunk = 64 * 1024

    public let loop: EventLoop
    public private(set) var services: [Service]
    private var listeners: [Listener] = []
    private var sessions: [Int32: Session] = [:]
    let relayBuffer: UnsafeMutableRawBufferPointer
    /// Pipes for the zero-copy relay.
    let pipes = PipePool()
    /// splice(2) relay; off with `BALANCERD_RELAY=copy` in the environment (for comparison
    /// and tests), or by itself where the kernel refuses splice on these sockets.
    private(set) var spliceEnabled = getenv("BALANCERD_RELAY").map { String(cString: $0) } != "copy"
    public var maxConnections: Int
    /// Sessions the file descriptor limit leaves room for (two descriptors each). At that
    /// many, listeners pause, so that waiting clients stay in the kernel's backlog and are
    /// served once descriptors free up, instead of being accepted and then failed.
    public var descriptorCapacity: Int
    private var pausedForDescriptors = false
    private var accepting = false
    /// Sockets systemd handed over that no service has taken yet (a reload may take them).
    public var activation = SocketActivation()
    /// Called when the last open session closes (the daemon uses it while draining).
    public var onLastSessionClosed: (() -> Void)?

    public var openConnections: Int { sessions.count }

    public init(loop: EventLoop, config: Config) {
        self.loop = loop
        services = config.services.map(Service.init)
        maxConnections = config.maxConnections
        descriptorCapacity = Self.sessionsAllowedByFileLimit(services: config.services.count)
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
                let fd = try listeningSocket(for: service.config.listen)
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

    /// The socket systemd passed for `address`, or a newly bound one.
    private func listeningSocket(for address: SocketAddress) throws(SystemError) -> Int32 {
        if let fd = activation.take(address) {
            Log.info("listener \(address): using the socket passed by systemd (fd \(fd))")
            return fd
        }
        return try Socket.listen(on: address)
    }

    public func startAccepting() {
        accepting = true
        listeners.forEach { $0.start() }
    }

    /// Stops accepting at once and closes the listening sockets.
    public func closeListeners() {
        accepting = false
        listeners.forEach { $0.close() }
        listeners.removeAll()
    }

    /// Switches to a reloaded configuration without dropping anything.
    ///
    /// A listen address in both configurations keeps its socket, so no client is refused;
    /// new addresses are bound first, and if one cannot be bound nothing changes and the
    /// error is thrown. Services are matched by name and keep their counters; endpoints
    /// that stay keep their health. Open sessions keep the service and endpoint objects
    /// they started with and finish on their own.
    public func apply(_ config: Config) throws(SystemError) -> ReloadChanges {
        var changes = ReloadChanges()
        var oldListeners: [SocketAddress: Listener] = [:]
        for listener in listeners { oldListeners[listener.address] = listener }
        var newListeners: [Listener] = []
        var bound: [Listener] = []
        for service in config.services {
            if let kept = oldListeners.removeValue(forKey: service.listen) {
                newListeners.append(kept)
                continue
            }
            do {
                let fd = try listeningSocket(for: service.listen)
                let listener = Listener(loop: loop, fd: fd, address: service.listen)
                bound.append(listener)
                newListeners.append(listener)
            } catch {
                bound.forEach { $0.close() }
                throw error
            }
        }

        var oldServices: [String: Service] = [:]
        for service in services { oldServices[service.name] = service }
        let newServices = config.services.map { serviceConfig -> Service in
            if let kept = oldServices.removeValue(forKey: serviceConfig.name) {
                let before = Set(kept.endpoints.map(\.address))
                kept.update(config: serviceConfig)
                let after = Set(kept.endpoints.map(\.address))
                changes.endpointsAdded += after.subtracting(before).count
                changes.endpointsRemoved += before.subtracting(after).count
                return kept
            }
            changes.servicesAdded += 1
            changes.endpointsAdded += serviceConfig.endpoints.count
            return Service(config: serviceConfig)
        }
        changes.servicesRemoved = oldServices.count
        for removed in oldServices.values {
            changes.endpointsRemoved += removed.endpoints.count
            removed.endpoints.forEach { $0.isRemoved = true }
        }

        for listener in oldListeners.values { listener.close() }
        for (listener, service) in zip(newListeners, newServices) {
            listener.onAccept = { [unowned self, unowned service] client in self.accepted(client, for: service) }
        }
        listeners = newListeners
        services = newServices
        maxConnections = config.maxConnections
        descriptorCapacity = Self.sessionsAllowedByFileLimit(services: config.services.count)
        if accepting && !pausedForDescriptors { bound.forEach { $0.start() } }
        return changes
    }

    /// Ends every open session of `service` (every session when nil).
    public func closeSessions(of service: Service? = nil) {
        for session in sessions.values where service == nil || session.service === service {
            session.forceClose()
        }
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
        if sessions.count >= descriptorCapacity && !pausedForDescriptors {
            pausedForDescriptors = true
            listeners.forEach { $0.stop() }
            Log.warning("listeners paused: \(sessions.count) connections open, as many as the file descriptor limit allows; resuming as connections close")
        }
        session.start()
    }

    func spliceUnsupported(_ error: SystemError) {
        guard spliceEnabled else { return }
        spliceEnabled = false
        Log.warning("splice unavailable (\(error.reason)); relaying with buffered copies")
    }

    /// Half of the soft RLIMIT_NOFILE, less a reserve for listeners, the admin port, health
    /// checks and libev's own descriptors.
    static func sessionsAllowedByFileLimit(services: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return Int.max }
        let reserve = 32 + services
        return max(1, (Int(limit.rlim_cur) - reserve) / 2)
    }

    func sessionClosed(_ session: Session) {
        session.service.activeConnections -= 1
        guard let removed = sessions.removeValue(forKey: session.downstream) else { return }
        // Closing runs inside the session's own callbacks: release it after them.
        loop.retire(removed)
        if pausedForDescriptors && sessions.count < descriptorCapacity {
            pausedForDescriptors = false
            listeners.forEach { $0.start() }
            Log.notice("listeners accepting again: \(sessions.count) connections open")
        }
        if sessions.isEmpty { onLastSessionClosed?() }
    }
}
