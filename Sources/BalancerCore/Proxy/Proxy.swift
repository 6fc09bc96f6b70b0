import Glibc
import Synchronization

/// The data path of one worker loop: its listening sockets and every session it accepted.
///
/// Everything here belongs to the worker's thread, except the counters other threads read
/// (`open`, `accepted`). The services are shared with the other workers (see `Service`).
public final class Proxy: @unchecked Sendable {
    /// Bytes moved per read; the one relay buffer of the loop is this large.
    static let relayChunk = 64 * 1024

    public let loop: EventLoop
    /// This worker's number; worker 0 runs on the main loop.
    public let index: Int
    private(set) var services: [Service] = []
    private var listeners: [Listener] = []
    private var sessions: [Int32: Session] = [:]
    let relayBuffer: UnsafeMutableRawBufferPointer
    /// Pipes for the zero-copy relay.
    let pipes = PipePool()
    /// Readiness of every session socket of this worker (edge-triggered; see `EdgePoller`).
    private(set) var poller: EdgePoller!
    /// The sessions by their sockets' tokens in `poller`.
    var table = SessionTable<Session>()
    /// splice(2) relay; off with `BALANCERD_RELAY=copy` in the environment (for comparison
    /// and tests), or by itself where the kernel refuses splice on these sockets.
    private(set) var spliceEnabled = getenv("BALANCERD_RELAY").map { String(cString: $0) } != "copy"
    /// Figures of every worker together (open connections, against `limits.maxConnections`).
    let totals: Workers.Totals
    /// The UDP services of this worker, made when the first one is installed.
    private var udp: UDPProxy?
    private var udpSessions = 0
    var maxConnections: Int
    /// Sessions the file descriptor limit leaves room for, in all workers (two descriptors
    /// each). At that many, listeners pause, so that waiting clients stay in the kernel's
    /// backlog and are served once descriptors free up, instead of being accepted and failed.
    var descriptorCapacity: Int
    private var pausedForDescriptors = false
    /// While paused: looks again at the count of all workers, whose closes this worker
    /// does not see.
    private let resumeCheck: TimerWatcher
    private var accepting = false
    /// Called when this worker's last open session closes (the daemon uses it to drain).
    var onLastSessionClosed: (() -> Void)?

    /// Sessions open on this worker (read from any thread).
    public let open = Atomic<Int>(0)
    /// Connections this worker has accepted since start (read from any thread).
    public let accepted = Atomic<Int>(0)
    /// This worker's side of the connection log.
    let accessLog: AccessLogBuffer
    /// The other workers, set once before any loop runs: a new connection goes to the one
    /// with the fewest open sessions when this one has clearly more (see `handOff`).
    var peers: [Proxy] = []
    /// Connections other workers handed to this one that it has not taken in yet: counted
    /// with `open` when choosing, so that a burst of hand-offs does not all land here.
    let incoming = Atomic<Int>(0)

    init(loop: EventLoop, index: Int, totals: Workers.Totals, maxConnections: Int, descriptorCapacity: Int, accessLog: AccessLogBuffer) {
        self.loop = loop
        self.index = index
        self.accessLog = accessLog
        self.totals = totals
        self.maxConnections = maxConnections
        self.descriptorCapacity = descriptorCapacity
        relayBuffer = .allocate(byteCount: Self.relayChunk, alignment: 64)
        resumeCheck = TimerWatcher(loop: loop, handler: {})
        resumeCheck.handler = { [unowned self] in self.resumeIfRoom() }
        do {
            // Unretained: the proxy outlives its poller.
            poller = try EdgePoller(loop: loop, context: Unmanaged.passUnretained(self).toOpaque(), function: Self.sessionEvent)
        } catch {
            // As for a loop that cannot be made: no descriptor or memory left at start-up.
            fatalError("worker \(index): \(error)")
        }
    }

    deinit {
        relayBuffer.deallocate()
    }

    /// An event from the poller: to the session its token names, if it is still open.
    private static let sessionEvent: EdgePoller.Function = { context, token, events in
        Unmanaged<Proxy>.fromOpaque(context!)._withUnsafeGuaranteedRef { proxy in
            proxy.table.session(for: token)?._withUnsafeGuaranteedRef {
                $0.ready(SessionTable<Session>.side(of: token), EdgePoller.Events(rawValue: events))
            }
        }
    }

    /// Takes a set of services (at start, and on every reload), each with the listen address
    /// its configuration names. A listener whose address stays keeps its socket, so no
    /// client is refused; `sockets` are this worker's newly bound ones; listeners left with
    /// no service are closed. Open sessions keep the service objects they started with.
    /// An address in `routes` is shared by services with server names: its listener reads
    /// each client's ClientHello first (see `HelloReader`) to pick the service.
    func install(_ services: [(service: Service, listen: ServiceConfig.ListenKey)], sockets: [ServiceConfig.ListenKey: Int32],
                 routes: [SocketAddress: ListenerRoute] = [:]) {
        var old: [SocketAddress: Listener] = [:]
        for listener in listeners { old[listener.address] = listener }
        var next: [Listener] = []
        var routed: Set<SocketAddress> = []
        for (service, key) in services where key.transport == .tcp {
            let address = key.address
            if let route = routes[address] {
                // One listener for every service of the address.
                guard routed.insert(address).inserted else { continue }
                guard let listener = old.removeValue(forKey: address) ?? sockets[key].map({ Listener(loop: loop, fd: $0, address: address) }) else { continue }
                if !listener.isStarted && accepting && !pausedForDescriptors { listener.start() }
                listener.onAccept = { [unowned self, route] client in self.acceptedForRouting(client, route) }
                next.append(listener)
                continue
            }
            let listener: Listener
            if let kept = old.removeValue(forKey: address) {
                listener = kept
            } else if let fd = sockets[key] {
                listener = Listener(loop: loop, fd: fd, address: address)
                if accepting && !pausedForDescriptors { listener.start() }
            } else {
                continue  // a socket passed by systemd: worker 0 alone listens on it
            }
            listener.onAccept = { [unowned self, unowned service] client in self.accepted(client, for: service) }
            next.append(listener)
        }
        for listener in old.values { listener.close() }
        listeners = next
        self.routes = routes
        let datagramServices = services.filter { $0.listen.transport == .udp }
        if udp == nil && !datagramServices.isEmpty {
            let made = UDPProxy(proxy: self)
            made.onSessionCount = { [unowned self] count in
                self.udpSessions = count
                self.sessionsChanged()
            }
            if accepting { made.startAccepting() }
            udp = made
        }
        udp?.install(datagramServices, sockets: sockets.filter { $0.key.transport == .udp })
        self.services = services.map(\.service)
    }

    func startAccepting() {
        accepting = true
        listeners.forEach { $0.start() }
        udp?.startAccepting()
    }

    /// Stops accepting at once and closes the listening sockets.
    func closeListeners() {
        accepting = false
        listeners.forEach { $0.close() }
        listeners.removeAll()
        for reader in hellos.values { reader.abandon() }
        // UDP sessions reply through their listening socket: it closes after them.
        udp?.stopAccepting()
    }

    /// Ends every open session of `service` (every session when nil), or only those to its
    /// `endpoint`, as `reason` (a drain deadline, or the admin port's close).
    func closeSessions(of service: Service? = nil, endpoint: Endpoint? = nil, because reason: CloseReason = .drainDeadline) {
        for session in sessions.values where (service == nil || session.service === service)
            && (endpoint == nil || session.endpoint === endpoint) {
            session.forceClose(reason)
        }
        udp?.closeSessions(of: service, endpoint: endpoint, because: reason)
    }

    /// The addresses shared by server name, as last installed.
    private var routes: [SocketAddress: ListenerRoute] = [:]
    /// Clients of a shared address whose ClientHello is being read, by descriptor.
    private var hellos: [Int32: HelloReader] = [:]
    /// Pending hellos allowed per worker: past it the oldest is dropped, so that a flood of
    /// slow or junk handshakes costs a bounded amount and cannot starve served connections.
    static let pendingHellosAllowed = 1024

    private func acceptedForRouting(_ fd: Int32, _ route: ListenerRoute) {
        accepted.wrappingAdd(1, ordering: .relaxed)
        if hellos.count >= Self.pendingHellosAllowed, let oldest = hellos.values.min(by: { $0.started < $1.started }) {
            route.figures.timeouts.wrappingAdd(1, ordering: .relaxed)
            oldest.abandon()
        }
        let reader = HelloReader(proxy: self, fd: fd, route: route)
        hellos[fd] = reader
        reader.start()
    }

    /// A ClientHello was read (or not): the connection goes to `service` with the bytes
    /// read so far, or is closed.
    func helloFinished(_ reader: HelloReader, service: Service?) {
        guard hellos.removeValue(forKey: reader.fd) != nil else { return }
        loop.retire(reader)
        guard let service else {
            Socket.close(reader.fd)
            return
        }
        accepted(reader.fd, for: service, preface: reader.bytes, counted: true, sharedSocket: reader.handedOver)
    }

    /// `sharedSocket`: the client's socket came through a takeover (see `Session.noteSharedSockets`):
    /// served here.
    private func accepted(_ fd: Int32, for service: Service, preface: [UInt8] = [], counted: Bool = false, sharedSocket: Bool = false) {
        if !sharedSocket, handOff(fd, for: service, preface: preface, counted: counted) { return }
        takeIn(fd, for: service, preface: preface, counted: counted, sharedSocket: sharedSocket)
    }

    /// Hands `fd` to a less loaded worker when `AcceptBalance` says so (as HAProxy's
    /// listener queues do); false to serve it here.
    private func handOff(_ fd: Int32, for service: Service, preface: [UInt8], counted: Bool) -> Bool {
        guard !peers.isEmpty else { return false }
        let load = { (proxy: Proxy) in proxy.open.load(ordering: .relaxed) + proxy.incoming.load(ordering: .relaxed) }
        guard let index = AcceptBalance.target(mine: load(self), others: peers.lazy.map(load)) else { return false }
        let target = peers[index]
        target.incoming.wrappingAdd(1, ordering: .relaxed)
        target.loop.post { [target] in
            target.incoming.wrappingSubtract(1, ordering: .relaxed)
            target.takeIn(fd, for: service, preface: preface, counted: counted)
        }
        return true
    }

    /// Serves `fd` on this worker, within the limits.
    private func takeIn(_ fd: Int32, for service: Service, preface: [UInt8] = [], counted: Bool = false, sharedSocket: Bool = false) {
        if !counted { accepted.wrappingAdd(1, ordering: .relaxed) }
        if totals.open.wrappingAdd(1, ordering: .relaxed).newValue > maxConnections {
            totals.open.wrappingSubtract(1, ordering: .relaxed)
            service.connectionRefused()
            let client = PeerAddress(peerOf: fd)
            if accessLog.isOn { accessLog.record(refusedRecord(client: client, service: service)) }
            Socket.close(fd)
            Log.debug("service \(service.name): client \(client?.description ?? "?"): connection refused: limits.maxConnections (\(maxConnections)) reached")
            return
        }
        // TCP_NODELAY comes from the listening socket (see `Socket.listen`).
        let settings = service.connectionOpened()
        let session = Session(proxy: self, service: service, settings: settings, downstream: fd, preface: preface)
        sessions[fd] = session
        open.store(sessions.count + udpSessions, ordering: .relaxed)
        if !pausedForDescriptors, case let inAll = totals.open.load(ordering: .relaxed), inAll >= descriptorCapacity {
            pausedForDescriptors = true
            listeners.forEach { $0.stop() }
            resumeCheck.start(after: 0.1, repeating: 0.1)
            Log.warning("listeners paused: \(inAll) connections open, as many as the file descriptor limit allows; resuming as connections close")
        }
        if sharedSocket { session.noteSharedSockets() }
        session.start()
    }

    /// The connection log's line for a client refused at `limits.maxConnections`.
    private func refusedRecord(client: PeerAddress?, service: Service) -> ConnectionRecord {
        ConnectionRecord(start: loop.now, durationMs: 0, client: client, listen: service.config.listen, service: service.name,
                         endpoint: nil, attempts: 0, queueMs: 0, connectMs: nil, bytesIn: 0, bytesOut: 0, end: .globalLimit, worker: index)
    }

    private func resumeIfRoom() {
        let inAll = totals.open.load(ordering: .relaxed)
        guard pausedForDescriptors, inAll < descriptorCapacity else { return }
        pausedForDescriptors = false
        resumeCheck.stop()
        if accepting { listeners.forEach { $0.start() } }
        Log.notice("listeners accepting again: \(inAll) connections open")
    }

    func spliceUnsupported(_ error: SystemError) {
        guard spliceEnabled else { return }
        spliceEnabled = false
        Log.warning("splice unavailable (\(error.reason)); relaying with buffered copies")
    }

    /// Half of the soft RLIMIT_NOFILE, less a reserve for listeners, the admin port, health
    /// checks and libev's own descriptors.
    static func sessionsAllowedByFileLimit(services: Int, workers: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return Int.max }
        let reserve = 32 + services * workers + 4 * workers
        return max(1, (Int(limit.rlim_cur) - reserve) / 2)
    }

    func sessionClosed(_ session: Session) {
        guard let removed = sessions.removeValue(forKey: session.downstream) else { return }
        totals.open.wrappingSubtract(1, ordering: .relaxed)
        // Closing runs inside the session's own callbacks: release it after them.
        loop.retire(removed)
        if pausedForDescriptors { resumeIfRoom() }
        sessionsChanged()
    }

    /// TCP or UDP sessions came or went: the figure other threads read, and the drain.
    private func sessionsChanged() {
        open.store(sessions.count + udpSessions, ordering: .relaxed)
        if sessions.isEmpty && udpSessions == 0 { onLastSessionClosed?() }
    }

    // MARK: Takeover

    /// A takeover begins: stops accepting (the sockets stay open and keep queueing clients
    /// in their backlog) and returns them, TCP and UDP.
    func pauseForTakeover() -> [(TakeoverMessage.Listener, Int32)] {
        listeners.forEach { $0.stop() }
        return listeners.map { (TakeoverMessage.Listener(kind: .tcp, worker: index), $0.fd) }
            + (udp?.pauseForTakeover() ?? []).map { (TakeoverMessage.Listener(kind: .udp, worker: index), $0) }
    }

    /// Parks every connection (see `Session.park`) and describes each, with its descriptors.
    func parkConnections() -> [(TakeoverMessage.Connection, [Int32])] {
        var parked: [(TakeoverMessage.Connection, [Int32])] = []
        for session in sessions.values where !session.isParked {
            let entry = session.park()
            parked.append((entry, entry.descriptorCount == 2 ? [session.downstream, session.upstream] : [session.downstream]))
        }
        for reader in hellos.values {
            reader.park()
            let entry = TakeoverMessage.Pending(service: nil, listen: reader.route.address.description, worker: index, bytes: reader.bytes)
            parked.append((.pending(entry), [reader.fd]))
        }
        return parked
    }

    /// Starts serving again what was parked: after a failed takeover (accepting too), or in
    /// the process that took everything over, once it committed.
    func resumeParked() {
        if accepting && !pausedForDescriptors { listeners.forEach { $0.start() } }
        udp?.resumeAfterTakeover()
        for session in Array(sessions.values) { session.resume() }
        for reader in Array(hellos.values) { reader.start() }
    }

    /// Takes a connection another process handed over, parked until `resumeParked()`.
    /// Returns why it could not be taken (then its descriptors are closed).
    func adopt(_ entry: TakeoverMessage.Connection, descriptors: [Int32]) -> String? {
        let serviceName: String?
        switch entry {
        case .established(let c): serviceName = c.service
        case .pending(let p): serviceName = p.service
        }
        let service = serviceName.flatMap { name in services.first { $0.name == name } }
        switch entry {
        case .established(let c):
            guard let service else { break }
            let endpoint = service.endpoint(at: c.endpoint)
            let settings = service.connectionAdopted(holding: endpoint)
            sessions[descriptors[0]] = Session(proxy: self, service: service, settings: settings, handedOver: c,
                                               downstream: descriptors[0], upstream: descriptors[1], endpoint: endpoint)
        case .pending(let p) where p.service != nil:
            guard let service else { break }
            let session = Session(proxy: self, service: service, settings: service.connectionAdopted(holding: nil),
                                  downstream: descriptors[0], preface: p.bytes)
            session.parkUnstarted()
            sessions[descriptors[0]] = session
        case .pending(let p):
            guard let route = routes.values.first(where: { $0.address.description == p.listen }) else { break }
            hellos[descriptors[0]] = HelloReader(proxy: self, fd: descriptors[0], route: route, preread: p.bytes)
            return nil
        }
        guard sessions[descriptors[0]] != nil else {
            descriptors.forEach(Socket.close)
            return "service \(serviceName ?? "?") is not in the new configuration"
        }
        totals.open.wrappingAdd(1, ordering: .relaxed)
        open.store(sessions.count + udpSessions, ordering: .relaxed)
        return nil
    }
}
