import Glibc
import Synchronization

/// The data path across every worker loop: `workers` in the configuration, one event loop
/// per core by default.
///
/// Worker 0 runs on the main (default) loop, beside signals, health checks and the admin
/// port; the others each run a loop on a thread of their own. Every worker has its own
/// listening socket per service address, bound with SO_REUSEPORT, so the kernel spreads
/// new connections over the workers and no accept is contended; a socket passed by systemd
/// is listened on by worker 0 alone. The `Service` objects (endpoints, health, round-robin
/// order, queue, counters) are shared by all workers under each service's lock.
///
/// This object is driven by the main thread. Work for another worker is posted to its loop;
/// a reload or a stop waits until every worker has carried it out.
public final class Workers: @unchecked Sendable {
    /// Figures of all workers together.
    final class Totals: Sendable {
        /// Open client connections, against `limits.maxConnections`.
        let open = Atomic<Int>(0)
    }

    /// One worker's figures, for the admin port.
    public struct Figures: Sendable {
        public var openConnections: Int
        public var acceptedConnections: Int
    }

    public let count: Int
    /// The services in force (main thread).
    public private(set) var services: [Service]
    let proxies: [Proxy]
    private let threads: [LoopThread]
    let totals = Totals()
    /// Sockets systemd handed over that no service has taken yet (a reload may take them).
    public var activation = SocketActivation()
    /// Listening sockets a takeover handed over, by address and worker: used instead of
    /// binding (see `bindListeners`).
    public var handedOver: [ServiceConfig.ListenKey: [Int: Int32]] = [:]
    /// Listen addresses (with their protocol) with sockets bound.
    private var bound: Set<ServiceConfig.ListenKey> = []
    public var boundAddresses: Set<ServiceConfig.ListenKey> { bound }
    /// What every worker's listeners serve, as last installed.
    private var installed: [(service: Service, listen: ServiceConfig.ListenKey)] = []
    private var started = false
    /// Called on the main thread once no connection is open on any worker, after `drain()`.
    private var onDrained: (() -> Void)?
    /// The connection log, with one buffer per worker.
    public let accessLog: AccessLog

    /// `count`: a number of workers other than the configuration's (a takeover keeps the
    /// previous process's, whose listening sockets it serves one per worker).
    public init(mainLoop: EventLoop, config: Config, count forced: Int? = nil) {
        count = forced ?? Self.resolveCount(config.workers)
        threads = (1..<max(count, 1)).map { _ in LoopThread() }
        let loops = [mainLoop] + threads.map(\.loop)
        let capacity = Proxy.sessionsAllowedByFileLimit(services: config.services.count, workers: count)
        let totals = totals
        let accessLog = AccessLog(workers: count)
        self.accessLog = accessLog
        proxies = loops.enumerated().map { index, loop in
            Proxy(loop: loop, index: index, totals: totals, maxConnections: config.maxConnections, descriptorCapacity: capacity,
                  accessLog: accessLog.buffers[index])
        }
        for proxy in proxies { proxy.peers = proxies.filter { $0 !== proxy } }
        services = config.services.map(Service.init)
    }

    /// `workers: auto` (nil) is one per online core.
    public static func resolveCount(_ configured: Int?) -> Int {
        configured ?? max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    public var openConnections: Int { totals.open.load(ordering: .relaxed) }

    public var figures: [Figures] {
        proxies.map { Figures(openConnections: $0.open.load(ordering: .relaxed), acceptedConnections: $0.accepted.load(ordering: .relaxed)) }
    }

    /// Binds every service's listen address, for every worker. On the first failure, closes
    /// what was bound and throws.
    public func bindListeners(_ config: Config) throws(SystemError) {
        let sockets = try bindSockets(for: config.services.map(\.listenKey))
        let pairs = Array(zip(services, config.services.map(\.listenKey)))
        let routes = makeRoutes(pairs)
        for proxy in proxies { proxy.install(pairs, sockets: sockets[proxy.index], routes: routes) }
        installed = pairs
        bound = Set(config.services.map(\.listenKey))
    }

    /// Starts accepting on every worker, and the worker threads.
    public func start() {
        for proxy in proxies { proxy.startAccepting() }
        threads.forEach { $0.start() }
        started = true
    }

    /// Figures of each address shared by server name, kept across reloads while it stays.
    private var routeFigures: [SocketAddress: ListenerRoute.Figures] = [:]

    /// The routing table of every TCP address whose services have `serverNames`.
    private func makeRoutes(_ pairs: [(Service, ServiceConfig.ListenKey)]) -> [SocketAddress: ListenerRoute] {
        var grouped: [SocketAddress: [Service]] = [:]
        for (service, key) in pairs where key.transport == .tcp && !service.config.serverNames.isEmpty {
            grouped[key.address, default: []].append(service)
        }
        var routes: [SocketAddress: ListenerRoute] = [:]
        var figures: [SocketAddress: ListenerRoute.Figures] = [:]
        for (address, services) in grouped {
            let kept = routeFigures[address] ?? ListenerRoute.Figures()
            figures[address] = kept
            routes[address] = ListenerRoute(address: address, services: services, figures: kept)
        }
        routeFigures = figures
        return routes
    }

    /// The figures of each address shared by server name, for the admin port.
    public var listenerFigures: [StatsRenderer.ListenerFigures] {
        routeFigures.sorted { $0.key < $1.key }.map { address, figures in
            StatsRenderer.ListenerFigures(listen: address.description, unmatched: figures.unmatched.load(ordering: .relaxed),
                                          notTLS: figures.notTLS.load(ordering: .relaxed), timeouts: figures.timeouts.load(ordering: .relaxed))
        }
    }

    /// Sockets for the addresses not bound yet, one per worker (index by worker).
    private func bindSockets(for keys: [ServiceConfig.ListenKey]) throws(SystemError) -> [[ServiceConfig.ListenKey: Int32]] {
        var perWorker = [[ServiceConfig.ListenKey: Int32]](repeating: [:], count: count)
        do throws(SystemError) {
            var seen: Set<ServiceConfig.ListenKey> = []
            // Services sharing an address by server name share its sockets: bound once.
            for key in keys where !bound.contains(key) && seen.insert(key).inserted {
                let address = key.address
                if let sockets = handedOver.removeValue(forKey: key) {
                    for (worker, fd) in sockets where worker < count { perWorker[worker][key] = fd }
                    continue
                }
                if key.transport == .udp {
                    // One socket per worker, as for TCP: the kernel keeps a client's
                    // datagrams on one of them, so a session lives on one worker.
                    if count > 1 { try DatagramSocket.checkBindable(address) }
                    for worker in 0..<count {
                        perWorker[worker][key] = try DatagramSocket.bound(to: address, reusePort: count > 1)
                    }
                    continue
                }
                if let fd = activation.take(address) {
                    Log.info("listener \(address): using the socket passed by systemd (fd \(fd))")
                    perWorker[0][key] = fd
                    continue
                }
                if count == 1 {
                    perWorker[0][key] = try Socket.listen(on: address)
                    continue
                }
                // SO_REUSEPORT would let this join a group another process of the same user
                // already listens with: a plain bind first fails if anyone holds the port.
                try Socket.checkBindable(address)
                for worker in 0..<count {
                    perWorker[worker][key] = try Socket.listen(on: address, reusePort: true)
                }
            }
        } catch {
            for sockets in perWorker { sockets.values.forEach(Socket.close) }
            throw error
        }
        return perWorker
    }

    /// Switches to a reloaded configuration without dropping anything.
    ///
    /// New listen addresses are bound first, for every worker; if one cannot be bound,
    /// nothing changes and the error is thrown. Services are matched by name and keep their
    /// counters; endpoints that stay keep their health. Every worker then swaps its
    /// listeners (an address in both configurations keeps its sockets, so no client is
    /// refused) before this returns. Open sessions finish with the objects they started with.
    public func apply(_ config: Config) throws(SystemError) -> ReloadChanges {
        let sockets = try bindSockets(for: config.services.map(\.listenKey))
        var changes = ReloadChanges()
        var old: [String: Service] = [:]
        for service in services { old[service.name] = service }
        let next = config.services.map { serviceConfig -> Service in
            if let kept = old.removeValue(forKey: serviceConfig.name) {
                // Most of a large map stays as it is when one etcd key or DNS name changes.
                if kept.config == serviceConfig { return kept }
                let moved = kept.update(config: serviceConfig)
                changes.endpointsAdded += moved.added
                changes.endpointsRemoved += moved.removed
                return kept
            }
            changes.servicesAdded += 1
            changes.endpointsAdded += serviceConfig.endpoints.count
            return Service(config: serviceConfig)
        }
        changes.servicesRemoved = old.count
        for removed in old.values {
            changes.endpointsRemoved += removed.endpoints.count
            removed.retire()
        }
        if let wanted = config.workers, wanted != count {
            Log.warning("workers: \(wanted) takes effect at the next start; running \(count)")
        }
        let pairs = Array(zip(next, config.services.map(\.listenKey)))
        let capacity = Proxy.sessionsAllowedByFileLimit(services: config.services.count, workers: count)
        let maxConnections = config.maxConnections
        let routes = makeRoutes(pairs)
        let sameListeners = sockets.allSatisfy(\.isEmpty) && pairs.count == installed.count && routes.isEmpty
            && zip(pairs, installed).allSatisfy { $0.0 === $1.service && $0.1 == $1.listen }
        onEveryWorker { proxy in
            if !sameListeners { proxy.install(pairs, sockets: sockets[proxy.index], routes: routes) }
            proxy.maxConnections = maxConnections
            proxy.descriptorCapacity = capacity
        }
        installed = pairs
        services = next
        bound = Set(config.services.map(\.listenKey))
        return changes
    }

    /// Stops accepting at once on every worker and closes the listening sockets.
    public func closeListeners() {
        onEveryWorker { $0.closeListeners() }
        bound = []
    }

    /// Ends every open session of `service` (every session when nil), or only those to its
    /// `endpoint`, on every worker, as `reason` (`.drainDeadline` or `.adminClose`).
    public func closeSessions(of service: Service? = nil, endpoint: Endpoint? = nil, because reason: CloseReason = .drainDeadline) {
        proxies[0].closeSessions(of: service, endpoint: endpoint, because: reason)
        for proxy in proxies.dropFirst() {
            proxy.loop.post { proxy.closeSessions(of: service, endpoint: endpoint, because: reason) }
        }
    }

    /// Calls `done` on the main thread once no connection is open on any worker.
    public func drain(then done: @escaping () -> Void) {
        onDrained = done
        onEveryWorker { [self] proxy in
            proxy.onLastSessionClosed = { [self] in
                // On the worker's thread: the check and the call belong to the main loop.
                self.proxies[0].loop.post { [self] in self.checkDrained() }
            }
        }
        checkDrained()
    }

    private func checkDrained() {
        guard openConnections == 0, let done = onDrained else { return }
        onDrained = nil
        done()
    }

    /// Stops the worker threads (after what was posted to them) and waits for them, then
    /// writes out the connection log's last lines.
    public func stop() {
        threads.forEach { $0.stop() }
        accessLog.stop()
    }

    /// Runs `body` with each worker's proxy on that worker's thread (worker 0 here, on the
    /// main thread) and returns once all have run it.
    private func onEveryWorker(_ body: @escaping @Sendable (Proxy) -> Void) {
        guard started, count > 1 else {
            proxies.forEach(body)
            return
        }
        let latch = Latch(count: count - 1)
        for proxy in proxies.dropFirst() {
            proxy.loop.post {
                body(proxy)
                latch.countDown()
            }
        }
        body(proxies[0])
        latch.wait()
    }

    // MARK: Takeover

    /// A takeover begins: every worker stops accepting; returns the listening sockets
    /// (which stay open and keep queueing clients).
    public func pauseForTakeover() -> [(TakeoverMessage.Listener, Int32)] {
        collect { $0.pauseForTakeover() }
    }

    /// Parks every connection of every worker and describes each, with its descriptors.
    public func parkConnections() -> [(TakeoverMessage.Connection, [Int32])] {
        collect { $0.parkConnections() }
    }

    /// The takeover failed: every worker serves and accepts again. Or, in the process that
    /// took over, once it committed: the handed-over connections are served from now on.
    public func resumeParked() {
        onEveryWorker { $0.resumeParked() }
    }

    /// Takes a handed-over connection, parked, onto its worker (before `start()`). Returns
    /// why it could not be taken.
    public func adopt(_ entry: TakeoverMessage.Connection, descriptors: [Int32]) -> String? {
        let worker: Int
        switch entry {
        case .established(let c): worker = c.worker
        case .pending(let p): worker = p.worker
        }
        return proxies[worker % count].adopt(entry, descriptors: descriptors)
    }

    /// The handed-over listening sockets no service of this configuration took.
    public func closeUnusedHandedOver() {
        for sockets in handedOver.values { sockets.values.forEach(Socket.close) }
        handedOver = [:]
    }

    /// Health and counters of every service, for the process taking over.
    public func takeoverFigures() -> [TakeoverMessage.ServiceFigures] {
        services.map { $0.takeoverFigures() }
    }

    /// Takes the previous process's health and counters, by service name.
    public func restore(_ figures: [TakeoverMessage.ServiceFigures], now: Double) {
        for entry in figures {
            services.first { $0.name == entry.name }?.restore(entry, now: now)
        }
    }

    /// Results gathered from the workers' threads.
    private final class Collected<T>: @unchecked Sendable {
        let lock = Lock()
        var byWorker: [Int: [T]] = [:]
    }

    /// `body`'s results from every worker, in worker order.
    private func collect<T>(_ body: @escaping @Sendable (Proxy) -> [T]) -> [T] {
        let results = Collected<T>()
        onEveryWorker { proxy in
            let made = body(proxy)
            results.lock.withLock { results.byWorker[proxy.index] = made }
        }
        return (0..<count).flatMap { results.byWorker[$0] ?? [] }
    }
}
