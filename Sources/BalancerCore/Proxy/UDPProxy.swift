import Glibc

/// The UDP services of one worker loop: their listening sockets and every session on them.
///
/// Datagrams from clients are read in batches (`recvmmsg`, at most `batchesPerWakeup`
/// batches before the loop moves on) and sent on each session's connected socket; replies
/// are read in batches from that socket into one reply batch that every session of the
/// wakeup shares, each reply with its own destination and source, and that batch leaves in
/// one `sendmmsg` on the listening socket once the wakeup's callbacks are done (or at once
/// when it is full, or when a reply for another listening socket comes). With many clients
/// each waiting for one reply, that is one send for all of them instead of one per client.
/// Nothing is queued beyond that batch: a datagram a socket cannot take now is dropped and
/// counted, as the kernel would. One sweep timer per worker ends sessions silent for their
/// service's `sessionTimeout` (no timer per session or per datagram).
final class UDPProxy {
    /// A session is a client on one listening socket.
    struct SessionKey: Hashable {
        var listener: Int32
        var client: DatagramAddress
    }

    private final class Listener {
        let key: ServiceConfig.ListenKey
        let fd: Int32
        var service: Service
        var watcher: IOWatcher?

        init(key: ServiceConfig.ListenKey, fd: Int32, service: Service) {
            self.key = key
            self.fd = fd
            self.service = service
        }
    }

    static let batchSize = 32
    static let batchesPerWakeup = 4

    private unowned let proxy: Proxy
    private var loop: EventLoop { proxy.loop }
    private var listeners: [ServiceConfig.ListenKey: Listener] = [:]
    private var sessions: [SessionKey: UDPSession] = [:]
    private lazy var inbound = DatagramBatch(capacity: Self.batchSize)
    private lazy var outbound = DatagramBatch(capacity: Self.batchSize)
    /// The replies waiting in `outbound` (slots `0..<replyCount`), the session of each, and
    /// the listening socket they all leave through.
    private var replyCount = 0
    private var replySessions = [UDPSession?](repeating: nil, count: UDPProxy.batchSize)
    private var replyListener: Int32 = -1
    /// Sends the waiting replies before the loop next waits: after every callback of the
    /// wakeup has added its own.
    private let replyFlusher: PrepareWatcher
    private let sweeper: TimerWatcher
    private var accepting = false
    /// Called with the number of open sessions whenever it changes.
    var onSessionCount: ((Int) -> Void)?

    var sessionCount: Int { sessions.count }

    init(proxy: Proxy) {
        self.proxy = proxy
        sweeper = TimerWatcher(loop: proxy.loop, handler: {})
        replyFlusher = PrepareWatcher(loop: proxy.loop, handler: {})
        sweeper.handler = { [unowned self] in self.sweep() }
        replyFlusher.handler = { [unowned self] in self.flushReplies() }
    }

    deinit {
        flushReplies()
        for session in sessions.values { session.detach() }
        for listener in listeners.values {
            listener.watcher?.stop()
            DatagramSocket.close(listener.fd)
        }
    }

    /// Takes the UDP services (at start, and on every reload): a listener whose address
    /// stays keeps its socket and its sessions; `sockets` are this worker's new ones;
    /// listeners left with no service close, and their sessions end.
    func install(_ services: [(service: Service, listen: ServiceConfig.ListenKey)], sockets: [ServiceConfig.ListenKey: Int32]) {
        // Waiting replies leave before a listening socket they name can close.
        flushReplies()
        var old = listeners
        var next: [ServiceConfig.ListenKey: Listener] = [:]
        for (service, key) in services {
            if let kept = old.removeValue(forKey: key) {
                kept.service = service
                next[key] = kept
            } else if let fd = sockets[key] {
                let listener = Listener(key: key, fd: fd, service: service)
                listener.watcher = IOWatcher(loop: loop, fd: fd) { [unowned self, unowned listener] _ in self.readClients(listener) }
                if accepting { listener.watcher?.watch(.read) }
                next[key] = listener
            }
        }
        listeners = next
        for listener in old.values {
            for session in sessions.values where session.listenerFD == listener.fd { end(session, .drainDeadline) }
            listener.watcher?.stop()
            if let watcher = listener.watcher { loop.retire(watcher) }
            DatagramSocket.close(listener.fd)
        }
        armSweeper()
    }

    func startAccepting() {
        accepting = true
        for listener in listeners.values { listener.watcher?.watch(.read) }
    }

    /// Shutdown: datagrams of open sessions still flow both ways until the sessions end
    /// (by their timeout or the drain deadline); new clients are not taken.
    func stopAccepting() {
        accepting = false
        if sessions.isEmpty { closeListeners() }
    }

    /// A takeover begins: clients' datagrams are no longer read (they queue in the sockets,
    /// which are handed over); returns those sockets. Open sessions go on until the process
    /// exits: the new one starts sessions afresh.
    func pauseForTakeover() -> [Int32] {
        for listener in listeners.values { listener.watcher?.stop() }
        return listeners.values.map(\.fd)
    }

    /// The takeover failed: reading goes on.
    func resumeAfterTakeover() {
        if accepting { startAccepting() }
    }

    /// Ends the sessions of `service` (all when nil) to `endpoint` (any when nil), now.
    func closeSessions(of service: Service? = nil, endpoint: Endpoint? = nil, because reason: CloseReason = .drainDeadline) {
        for session in sessions.values where (service == nil || session.service === service)
            && (endpoint == nil || session.endpoint === endpoint) {
            end(session, reason)
        }
    }

    private func closeListeners() {
        flushReplies()
        for listener in listeners.values {
            listener.watcher?.stop()
            DatagramSocket.close(listener.fd)
        }
        listeners.removeAll()
        sweeper.stop()
    }

    // MARK: Client to endpoint

    private func readClients(_ listener: Listener) {
        let now = loop.now
        for _ in 0..<Self.batchesPerWakeup {
            let received: Int
            do throws(SystemError) {
                guard case .done(let count) = try inbound.receive(from: listener.fd) else { return }
                received = count
            } catch {
                Log.warning("udp listener \(listener.key.address): \(error)")
                return
            }
            for index in 0..<received {
                guard let client = inbound.peer(index) else { continue }
                let key = SessionKey(listener: listener.fd, client: client)
                let payload = inbound.payload(index)
                guard let session = sessions[key] ?? open(key, on: listener, local: inbound.local(index), now: now) else {
                    listener.service.droppedDatagrams.wrappingAdd(1, ordering: .relaxed)
                    continue
                }
                session.lastActive = now
                forward(payload, for: session, now: now)
            }
            if received < Self.batchSize { return }
        }
    }

    /// A new session for `key`'s first datagram, or nil (not accepting, at the limit).
    private func open(_ key: SessionKey, on listener: Listener, local: DatagramAddress?, now: Double) -> UDPSession? {
        guard accepting else { return nil }
        let service = listener.service
        if proxy.totals.open.wrappingAdd(1, ordering: .relaxed).newValue > proxy.maxConnections {
            proxy.totals.open.wrappingSubtract(1, ordering: .relaxed)
            service.connectionRefused()
            Log.debug("service \(service.name): datagram from \(key.client.socketAddress) dropped: limits.maxConnections (\(proxy.maxConnections)) reached")
            return nil
        }
        proxy.accepted.wrappingAdd(1, ordering: .relaxed)
        let settings = service.connectionOpened()
        let clientKey = settings.needsClientAddress ? MaglevTable.fnv1a(key.client.socketAddress.host) : 0
        let session = UDPSession(key: key, service: service, settings: settings, listenerFD: listener.fd,
                                 client: key.client, local: local, clientKey: clientKey, now: now)
        sessions[key] = session
        onSessionCount?(sessions.count)
        armSweeper()
        return session
    }

    /// Sends one datagram of the client to the session's endpoint, choosing one first if
    /// it has none (a new session, or its endpoint refused).
    private func forward(_ payload: UnsafeRawBufferPointer, for session: UDPSession, now: Double) {
        let service = session.service
        for _ in 0...max(0, session.settings.config.retries) {
            guard session.endpoint != nil || connect(session, now: now) else {
                service.droppedDatagrams.wrappingAdd(1, ordering: .relaxed)
                return
            }
            do throws(SystemError) {
                switch try DatagramSocket.send(session.upstream, payload) {
                case .done(let sent):
                    session.datagramsIn += 1
                    session.bytesIn += UInt64(sent)
                    service.datagramsIn.wrappingAdd(1, ordering: .relaxed)
                    service.bytesIn.wrappingAdd(UInt64(sent), ordering: .relaxed)
                    session.endpoint?.bytesIn.wrappingAdd(UInt64(sent), ordering: .relaxed)
                case .wouldBlock:
                    service.droppedDatagrams.wrappingAdd(1, ordering: .relaxed)
                }
                return
            } catch {
                // ECONNREFUSED: an earlier datagram met "port unreachable". Another
                // endpoint gets this one.
                refuse(session, error, now: now)
            }
        }
        service.droppedDatagrams.wrappingAdd(1, ordering: .relaxed)
    }

    /// Chooses the session's endpoint and connects a socket to it.
    private func connect(_ session: UDPSession, now: Double) -> Bool {
        let service = session.service
        guard let endpoint = service.chooseForDatagrams(excluding: session.refused, now: now, clientKey: session.clientKey) else {
            return false
        }
        session.attempts += 1
        do throws(SystemError) {
            let fd = try DatagramSocket.connected(to: endpoint.address)
            let watcher = IOWatcher(loop: loop, fd: fd) { [unowned self, unowned session] _ in self.readEndpoint(session) }
            session.attach(endpoint, socket: fd, watcher: watcher)
            watcher.watch(.read)
            service.connectSucceeded(endpoint)
            return true
        } catch {
            service.connectFailed(endpoint, error: error, now: now, on: proxy.index)
            return false
        }
    }

    private func refuse(_ session: UDPSession, _ error: SystemError, now: Double) {
        // Possibly from inside the watcher's own callback: retire it, do not free it here.
        if let watcher = session.watcher { loop.retire(watcher) }
        guard let endpoint = session.detach() else { return }
        session.refused.append(endpoint)
        Log.debug("service \(session.service.name): udp session of \(session.client.socketAddress): \(endpoint.config.name) refused (\(error.reason)); moving")
        session.service.connectFailed(endpoint, error: error, now: now, on: proxy.index)
    }

    // MARK: Endpoint to client

    /// Reads the endpoint's replies into the shared reply batch, addressed to the client.
    private func readEndpoint(_ session: UDPSession) {
        let service = session.service
        let now = loop.now
        for _ in 0..<Self.batchesPerWakeup {
            guard session.upstream >= 0 else { return }
            if replyCount == Self.batchSize || (replyCount > 0 && replyListener != session.listenerFD) { flushReplies() }
            let start = replyCount
            let received: Int
            do throws(SystemError) {
                guard case .done(let count) = try outbound.receive(from: session.upstream, into: start) else { return }
                received = count
            } catch {
                refuse(session, error, now: now)
                return
            }
            session.lastActive = now
            var bytes = 0
            for index in start..<start + received {
                bytes += outbound.payload(index).count
                outbound.address(index, to: session.client, from: session.local)
                replySessions[index] = session
            }
            replyCount = start + received
            replyListener = session.listenerFD
            replyFlusher.start()
            session.bytesOut += UInt64(bytes)
            service.bytesOut.wrappingAdd(UInt64(bytes), ordering: .relaxed)
            session.endpoint?.bytesOut.wrappingAdd(UInt64(bytes), ordering: .relaxed)
            // Fewer than there was room for: the socket is drained.
            if received < Self.batchSize - start { return }
        }
    }

    /// Sends the waiting replies in one `sendmmsg` and counts each for its session; what
    /// the socket does not take is dropped and counted.
    private func flushReplies() {
        replyFlusher.stop()
        let count = replyCount
        guard count > 0 else { return }
        replyCount = 0
        _ = outbound.send(count, on: replyListener)
        // Counted per run of one session (a session's replies are adjacent) and per run of
        // one service, so that the shared counters see one update per run, not per datagram.
        var service: Service?
        var serviceSent: UInt64 = 0, serviceDropped: UInt64 = 0
        for index in 0..<count {
            guard let session = replySessions[index] else { continue }
            replySessions[index] = nil
            if session.service !== service {
                if let service { tally(serviceSent, serviceDropped, for: service) }
                service = session.service
                serviceSent = 0
                serviceDropped = 0
            }
            if outbound.taken(index) {
                session.datagramsOut += 1
                serviceSent += 1
            } else {
                serviceDropped += 1
            }
        }
        if let service { tally(serviceSent, serviceDropped, for: service) }
    }

    private func tally(_ sent: UInt64, _ dropped: UInt64, for service: Service) {
        if sent > 0 { service.datagramsOut.wrappingAdd(sent, ordering: .relaxed) }
        if dropped > 0 { service.droppedDatagrams.wrappingAdd(dropped, ordering: .relaxed) }
    }

    // MARK: Timeouts

    /// Sweeps often enough for the shortest session timeout in force (a quarter of it,
    /// between 50 ms and 1 s), only while there are sessions.
    private func armSweeper() {
        guard !sessions.isEmpty else {
            sweeper.stop()
            return
        }
        guard !sweeper.isActive else { return }
        let shortest = listeners.values.map { $0.service.config.sessionTimeout }.min() ?? 30
        let period = min(1, max(0.05, shortest / 4))
        sweeper.start(after: period, repeating: period)
    }

    private func sweep() {
        let now = loop.now
        for session in sessions.values where now - session.lastActive >= session.settings.config.sessionTimeout {
            end(session, .sessionTimeout)
        }
        if sessions.isEmpty {
            sweeper.stop()
            if !accepting { closeListeners() }
        }
    }

    private func end(_ session: UDPSession, _ reason: CloseReason) {
        guard sessions.removeValue(forKey: session.key) != nil else { return }
        // Its waiting replies count in the record below.
        if replyCount > 0 { flushReplies() }
        if let watcher = session.watcher { loop.retire(watcher) }
        let served = session.endpoint ?? session.refused.last
        if let endpoint = session.detach() { session.service.release(endpoint, on: proxy.index) }
        if proxy.accessLog.isOn {
            let now = loop.now
            var record = ConnectionRecord(start: session.started, durationMs: Int((now - session.started) * 1000),
                                          client: PeerAddress(session.client.socketAddress), listen: session.service.config.listen,
                                          service: session.service.name, endpoint: served?.address, attempts: session.attempts,
                                          queueMs: 0, connectMs: nil, bytesIn: session.bytesIn, bytesOut: session.bytesOut,
                                          end: reason, worker: proxy.index)
            record.datagrams = (session.datagramsIn, session.datagramsOut)
            proxy.accessLog.record(record)
        }
        // A session none of whose datagrams reached an endpoint was not served.
        session.service.connectionClosed(failed: session.datagramsIn == 0)
        proxy.totals.open.wrappingSubtract(1, ordering: .relaxed)
        Log.debug("service \(session.service.name): udp session of \(session.client.socketAddress) ended: \(session.datagramsIn) in, \(session.datagramsOut) out")
        onSessionCount?(sessions.count)
    }
}
