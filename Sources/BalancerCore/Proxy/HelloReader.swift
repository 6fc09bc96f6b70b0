/// A client of an address shared by server name, before it has a service: reads its TLS
/// ClientHello (at most 16 KiB, within the address's `helloTimeout`), picks the service by
/// the server name in it, and hands the connection, with every byte read, to the proxy.
///
/// Unmatched names, bytes that are not TLS, and clients too slow to send a whole hello are
/// closed at once and counted on the address; nothing reaches any endpoint.
final class HelloReader {
    unowned let proxy: Proxy
    let fd: Int32
    let route: ListenerRoute
    /// Loop time it was accepted (the oldest pending hello is the first dropped).
    let started: Double
    private var hello = ClientHello()
    private var watcher: IOWatcher?
    private let timer: TimerWatcher
    private var done = false

    init(proxy: Proxy, fd: Int32, route: ListenerRoute) {
        self.proxy = proxy
        self.fd = fd
        self.route = route
        started = proxy.loop.now
        timer = TimerWatcher(loop: proxy.loop, handler: {})
    }

    /// A client handed over by a takeover, with the part of its ClientHello read so far
    /// (not enough for a verdict, or the previous process would have had one).
    convenience init(proxy: Proxy, fd: Int32, route: ListenerRoute, preread: [UInt8]) {
        self.init(proxy: proxy, fd: fd, route: route)
        _ = preread.withUnsafeBytes { hello.feed($0) }
        handedOver = true
    }

    /// Its socket came through a takeover: the previous process may hold it still.
    private(set) var handedOver = false

    /// A takeover: stops reading (and the clock) until `start()` again.
    func park() {
        timer.stop()
        watcher?.stop()
    }

    /// What was read: the ClientHello, sent to the endpoint first and unchanged.
    var bytes: [UInt8] { hello.bytes }

    func start() {
        timer.handler = { [unowned self] in
            self.route.figures.timeouts.wrappingAdd(1, ordering: .relaxed)
            Log.debug("listener \(self.route.address): client \(self.clientText): no whole ClientHello within \(DurationText.format(self.route.helloTimeout)); closed")
            self.finish(nil, end: .helloTimeout)
        }
        timer.start(after: route.helloTimeout)
        self.watcher?.stop()
        let watcher = IOWatcher(loop: proxy.loop, fd: fd) { [unowned self] _ in self.readable() }
        self.watcher = watcher
        watcher.watch(.read)
    }

    /// Dropped without a verdict (shutdown, or too many pending).
    func abandon() {
        finish(nil)
    }

    private func readable() {
        let buffer = proxy.relayBuffer
        let room = min(buffer.count, ClientHello.limit + 1 - hello.bytes.count)
        let count: Int
        do throws(SystemError) {
            guard case .done(let n) = try Socket.read(fd, into: buffer.baseAddress!, count: max(1, room)) else { return }
            count = n
        } catch {
            return finish(nil)
        }
        // The client closed before a whole hello.
        guard count > 0 else { return finish(nil) }
        switch hello.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
        case .needMore:
            return
        case .notTLS:
            route.figures.notTLS.wrappingAdd(1, ordering: .relaxed)
            Log.debug("listener \(route.address): client \(clientText): not a TLS ClientHello; closed")
            finish(nil, end: .notTLS)
        case .found(let name):
            guard let service = route.table.lookup(name) else {
                route.figures.unmatched.wrappingAdd(1, ordering: .relaxed)
                Log.debug("listener \(route.address): client \(clientText): server name \(name ?? "(none)") matches no service; closed")
                return finish(nil, end: .unmatched)
            }
            finish(service)
        }
    }

    /// `end`: why a connection that reached no service ended, for the connection log.
    private func finish(_ service: Service?, end: CloseReason? = nil) {
        guard !done else { return }
        done = true
        if let end, proxy.accessLog.isOn {
            let now = proxy.loop.now
            proxy.accessLog.record(ConnectionRecord(
                start: started, durationMs: Int((now - started) * 1000), client: PeerAddress(peerOf: fd), listen: route.address,
                service: nil, endpoint: nil, attempts: 0, queueMs: 0, connectMs: nil, bytesIn: 0, bytesOut: 0,
                end: end, worker: proxy.index))
        }
        timer.stop()
        watcher?.stop()
        // Possibly inside the watcher's own callback: released after the callbacks.
        if let watcher { proxy.loop.retire(watcher) }
        watcher = nil
        proxy.helloFinished(self, service: service)
    }

    private var clientText: String { Socket.peerAddress(fd)?.description ?? "?" }
}
