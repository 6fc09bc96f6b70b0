import Glibc
import Synchronization

/// One client connection and its upstream: carries out what its `ConnectionState` decides.
///
/// Bulk transfers move by `splice(2)` through a pipe taken from the loop's pool for as long
/// as bytes are in flight (zero-copy); short exchanges, and everything where splice cannot
/// be used, are read into the loop's shared buffer and written straight on. Either way,
/// what the destination does not take at once stays in the pipe (or in `PendingBytes`) and
/// the source is not read until it has been written (backpressure). An idle connection
/// holds no pipe and no buffer.
///
/// A session never frees itself inside its own callback: `close` hands it to the proxy,
/// which drops the last reference after the loop's current callbacks.
final class Session {
    static let readsPerWakeup = 4

    /// unowned(unsafe): a proxy outlives every session it holds (it lives as long as the
    /// process), and a checked reference would cost reference counting on every event.
    unowned(unsafe) let proxy: Proxy
    /// The proxy's loop and pipe pool, unretained (the proxy keeps them): reaching them
    /// through a reference, even an unowned(unsafe) one, costs a retain and a release on
    /// every chunk; through `Unmanaged` it costs nothing.
    private let loopRef: Unmanaged<EventLoop>
    private let pipesRef: Unmanaged<PipePool>
    let service: Service
    /// The service's configuration when this connection arrived: a reload applies to new
    /// connections, and reading it here takes no lock.
    let settings: Service.Settings
    let downstream: Int32
    private(set) var upstream: Int32 = -1
    private(set) var endpoint: Endpoint? {
        didSet { counted = endpoint.map(Unmanaged.passUnretained) }
    }
    /// `endpoint`, for counting bytes without reference counting per chunk (`endpoint`
    /// keeps it alive).
    private var counted: Unmanaged<Endpoint>?
    /// Endpoints whose connect failed for this client; a retry skips them.
    private var failed: [Endpoint] = []
    private(set) var state: ConnectionState
    /// Counted in `endpoint.activeConnections` (from the start of the connect, so that
    /// connects in flight count against `maxConnections`).
    private var holdsSlot = false
    /// Waiting in the service's queue for a free slot.
    private var queued = false
    /// What the poller last said of each side, kept until a read or write meets EAGAIN: the
    /// sockets are watched edge-triggered (see `EdgePoller`), so nothing is reported twice.
    private var readiness = Readiness()
    private let timer: TimerWatcher
    private var lastActivity: Double = 0
    private var toUpstream = PendingBytes()
    private var toDownstream = PendingBytes()
    /// A pipe still holding bytes for that side (the zero-copy path), and how many.
    private var pipeToUpstream: (pipe: PipePool.Pipe, count: Int)?
    private var pipeToDownstream: (pipe: PipePool.Pipe, count: Int)?
    /// Directions (by source side) that moved a full buffer in one read: bulk transfers,
    /// which go by splice from then on. Short exchanges stay on copies, which cost less
    /// for a few bytes than two splices through a pipe.
    private var splicingFromDownstream = false
    private var splicingFromUpstream = false
    /// What the connection log's line needs, measured as it happens.
    private var measure: ConnectionMeasure

    /// Bytes read from the client before the session existed (a ClientHello read to choose
    /// the service): sent to the endpoint first, after any PROXY header.
    private var preface: [UInt8]

    init(proxy: Proxy, service: Service, settings: Service.Settings, downstream: Int32, preface: [UInt8] = []) {
        self.preface = preface
        self.proxy = proxy
        loopRef = Unmanaged.passUnretained(proxy.loop)
        pipesRef = Unmanaged.passUnretained(proxy.pipes)
        self.service = service
        self.downstream = downstream
        self.settings = settings
        state = ConnectionState(retries: settings.config.retries)
        measure = ConnectionMeasure(start: proxy.loop.now)
        // Read now: once the client has reset, its address is gone.
        if proxy.accessLog.isOn { measure.client = PeerAddress(peerOf: downstream) }
        timer = TimerWatcher(loop: proxy.loop, handler: {})
        // Unretained: the timer is this session's own, stopped when it closes, and the
        // session itself is released only after the loop's callbacks (see `close`).
        timer.handler = { [unowned(unsafe) self] in self.timerFired() }
    }

    func start() {
        token = proxy.table.insert(self)
        do {
            // From now on the client's bytes are reported, and wait for the upstream.
            try proxy.poller.add(downstream, token: token)
        } catch {
            Log.warning("service \(service.name): client \(clientDescription): \(error)")
            perform(state.start())
            perform(state.reset(.downstream))
            return
        }
        perform(state.start())
    }

    /// This session's downstream token in the proxy's table and poller (see `SessionTable`).
    private var token: UInt64 = 0

    /// Ends the connection on a shutdown's drain deadline, or from the admin port.
    func forceClose(_ reason: CloseReason = .drainDeadline) {
        perform(reason == .adminClose ? state.adminClose() : state.drainDeadline())
    }

    // MARK: Actions

    private func perform(_ action: ConnectionState.Action) {
        switch action {
        case .connect: connectNext()
        case .startRelay: startRelay()
        case .shutdownWrite(let side):
            Socket.shutdownWrite(side == .downstream ? downstream : upstream)
        case .close(let reason): close(reason)
        case .none: break
        }
    }

    private func connectNext() {
        let key = settings.needsClientAddress ? clientKey() : 0
        switch service.choose(excluding: failed, now: now, clientKey: key, for: self) {
        case .noneUp:
            perform(state.noEndpoint())
        case .queued:
            queued = true
            measure.queued(now)
            timer.start(after: settings.config.queue?.timeout ?? 0)
        case .allFull:
            perform(state.allFull(queueFull: settings.config.queue != nil))
        case .endpoint(let endpoint):
            connect(to: endpoint)
        }
    }

    /// Called by the service when a slot may have freed. Returns false when every endpoint
    /// is still full (the session stays queued).
    func retryFromQueue() -> Bool {
        let key = settings.needsClientAddress ? clientKey() : 0
        switch service.choose(excluding: failed, now: now, clientKey: key, for: self, fromQueue: true) {
        case .allFull, .queued:
            return false
        case .noneUp:
            queued = false
            measure.leftQueue(now)
            timer.stop()
            perform(state.noEndpoint())
        case .endpoint(let endpoint):
            queued = false
            measure.leftQueue(now)
            timer.stop()
            connect(to: endpoint)
        }
        return true
    }

    /// The client's address hashed, for source-ip affinity (the address, not the port).
    private func clientKey() -> UInt64 {
        MaglevTable.fnv1a(Socket.peerAddress(downstream)?.host ?? "")
    }

    private func connect(to endpoint: Endpoint) {
        self.endpoint = endpoint
        holdsSlot = true  // taken by `choose`
        measure.connectStarted(now)
        let fd: Int32
        do {
            fd = try Socket.open(family: endpoint.address.family)
        } catch {
            connectFailed(error)
            return
        }
        upstream = fd
        Socket.setNoDelay(fd)
        do {
            try proxy.poller.add(fd, token: SessionTable<Session>.token(token, side: .upstream))
            switch try Socket.connect(fd, to: endpoint.address) {
            case .done:
                readiness.writable.insert(.upstream)
                connectSucceeded()
            case .wouldBlock:
                // The poller reports the socket writable once connected, failed if not.
                timer.start(after: settings.config.connectTimeout)
            }
        } catch {
            connectFailed(error)
        }
    }

    /// `error` is nil for a connect timeout.
    private func connectFailed(_ error: SystemError?) {
        if let endpoint, holdsSlot {
            logConnectFailure(to: endpoint, error)
            // Gives the slot back too.
            service.connectFailed(endpoint, error: error, now: now, on: proxy.index)
            holdsSlot = false
            failed.append(endpoint)
        }
        endpoint = nil
        dropUpstream()
        perform(state.connectFailed())
    }

    private func connectSucceeded() {
        guard let endpoint else { return }
        timer.stop()
        measure.connected(now)
        service.connectSucceeded(endpoint)
        perform(state.connected())
    }

    private func startRelay() {
        lastActivity = now
        timer.start(after: settings.config.idleTimeout)
        let version = settings.config.proxyProtocol
        if version != .off || !preface.isEmpty {
            sendPreface(version)
            if state.phase == .closed { return }
        }
        // The client's first bytes, if they came while connecting, go on now.
        pump()
    }

    /// The PROXY header and the bytes read before the session go first on the upstream;
    /// what the socket does not take at once waits in `toUpstream`, and the client is not
    /// read until it is written.
    private func sendPreface(_ version: ProxyProtocolVersion) {
        var header: [UInt8] = []
        if version != .off {
            guard let source = Socket.peerAddress(downstream), let destination = Socket.localAddress(downstream) else {
                perform(state.reset(.downstream))
                return
            }
            header = ProxyProtocolHeader.proxied(version, source: source, destination: destination)
        }
        if !preface.isEmpty, let endpoint {
            // The client's own bytes, counted as relayed.
            measure.bytesIn &+= UInt64(preface.count)
            service.bytesIn.wrappingAdd(UInt64(preface.count), ordering: .relaxed)
            endpoint.bytesIn.wrappingAdd(UInt64(preface.count), ordering: .relaxed)
            header += preface
            preface = []
        }
        header.withUnsafeBytes { bytes in
            do {
                var written = 0
                while written < bytes.count {
                    switch try Socket.write(upstream, from: bytes.baseAddress! + written, count: bytes.count - written) {
                    case .done(let n): written += n
                    case .wouldBlock:
                        readiness.writable.remove(.upstream)
                        toUpstream.store(bytes.baseAddress! + written, count: bytes.count - written)
                        return
                    }
                }
            } catch {
                perform(state.reset(.upstream))
            }
        }
    }

    private func dropUpstream() {
        if upstream >= 0 {
            // Closing drops it from the poller's set, unless another process has it too.
            if sharesSockets { proxy.poller.remove(upstream) }
            Socket.close(upstream)
            upstream = -1
        }
        readiness.forget(.upstream)
    }

    private func close(_ reason: CloseReason) {
        // From here on, events still on their way for its sockets find nothing.
        proxy.table.remove(token)
        timer.stop()
        // Counted before the client's socket closes: once a client sees its end, `/stats`
        // (served by another worker's thread, perhaps) already shows it.
        if queued {
            queued = false
            measure.leftQueue(now)
            service.leaveQueue(self, timedOut: false)
        }
        let slot = holdsSlot ? endpoint : nil
        holdsSlot = false
        service.connectionClosed(failed: reason.isFailure, releasing: slot, on: proxy.index)
        if reason.isFailure {
            Log.info("service \(service.name): client \(clientDescription): connection closed: \(describe(reason))")
        }
        if proxy.accessLog.isOn { proxy.accessLog.record(record(reason)) }
        dropUpstream()
        if sharesSockets { proxy.poller.remove(downstream) }
        Socket.close(downstream)
        toUpstream.release()
        toDownstream.release()
        // A pipe kept here still holds bytes: it cannot go back to the pool.
        if let held = pipeToUpstream { PipePool.close(held.pipe); pipeToUpstream = nil }
        if let held = pipeToDownstream { PipePool.close(held.pipe); pipeToDownstream = nil }
        proxy.sessionClosed(self)
    }

    /// The connection log's line, as the connection ends.
    private func record(_ reason: CloseReason) -> ConnectionRecord {
        let served = reason == .connectFailed ? failed.last : endpoint
        return ConnectionRecord(
            start: measure.start, durationMs: ConnectionMeasure.milliseconds(now - measure.start),
            client: measure.client ?? PeerAddress(peerOf: downstream), listen: settings.config.listen, service: service.name,
            endpoint: served?.address, attempts: measure.attempts, queueMs: ConnectionMeasure.milliseconds(measure.queueTime),
            connectMs: measure.connectTime.map(ConnectionMeasure.milliseconds), bytesIn: measure.bytesIn, bytesOut: measure.bytesOut,
            end: reason, worker: proxy.index)
    }

    /// The client's `ip:port` for the daemon's log lines (`?` once it has gone).
    private var clientDescription: String {
        (measure.client ?? PeerAddress(peerOf: downstream))?.description ?? "?"
    }

    /// A connect made for this client failed: logged with the client's address (a local
    /// cause, such as no descriptor left, as a warning).
    private func logConnectFailure(to endpoint: Endpoint, _ error: SystemError?) {
        if let error, error.isLocalResourceShortage {
            Log.warning("service \(service.name): client \(clientDescription): connect to \(endpoint.config.name) failed for a local reason: \(error.reason)")
        } else {
            Log.debug("service \(service.name): client \(clientDescription): connect to \(endpoint.config.name) failed: \(error?.reason ?? "connect timed out")")
        }
    }

    private func describe(_ reason: CloseReason) -> String {
        switch reason {
        case .connectFailed: "every connect failed (\(state.attempts) tried)"
        case .noHealthyEndpoint: "no endpoint is up"
        case .overLimit: "every endpoint is at its connection limit"
        case .queueFull: "every endpoint is at its connection limit and the queue is full"
        case .queueTimeout: "waited \(DurationText.format(settings.config.queue?.timeout ?? 0)) in the queue"
        default: "\(reason)"
        }
    }

    // MARK: Events

    /// The loop's cached time.
    private var now: Double { loopRef._withUnsafeGuaranteedRef { $0.now } }

    private func takePipe() -> PipePool.Pipe? { pipesRef._withUnsafeGuaranteedRef { $0.take() } }
    private func givePipe(_ pipe: PipePool.Pipe) { pipesRef._withUnsafeGuaranteedRef { $0.give(pipe) } }

    /// An event from the poller for `side`'s socket (see `Proxy.sessionEvent`).
    func ready(_ side: Side, _ events: EdgePoller.Events) {
        // A closed session may still have an event in the batch being dispatched.
        guard state.phase != .closed, !isParked else { return }
        readiness.note(events, on: side)
        if state.phase == .connecting {
            // The client's bytes wait (noted above) until the upstream is connected.
            guard side == .upstream, upstream >= 0, !queued else { return }
            if events.contains(.failed) {
                // Only a failed connect costs a getsockopt: for its reason. No error pending
                // means the report was not this socket's (one closed while another process
                // still held it): nothing to do.
                let code = Socket.pendingError(upstream)
                if code != 0 { connectFailed(SystemError(errno: code, operation: "connect")) }
            } else if events.contains(.writable) {
                // Writable, with no error pending: the handshake is done.
                connectSucceeded()
            }
            return
        }
        pump()
    }

    /// Moves what can move now: what waits for a writable side first, then reads from each
    /// readable side whose peer has nothing waiting. Runs after every event: with
    /// edge-triggered readiness, what is not done now is not reported again.
    private func pump() {
        for side in [Side.upstream, .downstream] where readiness.writable.contains(side) && hasPending(toward: side) {
            flush(toward: side)
            if state.phase != .relaying { return }
        }
        for source in [Side.downstream, .upstream]
        where readiness.readable.contains(source) && state.isReading(from: source) && !hasPending(toward: source.peer) {
            relay(from: source)
            if state.phase != .relaying { return }
        }
    }

    /// A read from `source` that returned fewer bytes than asked drained its socket: with
    /// the peer's FIN seen, that is its end of file, told without a read that returns 0.
    /// Otherwise the socket waits for the poller's next event.
    private func drainedRead(from source: Side) {
        if readiness.peerClosed.contains(source) {
            perform(state.finReceived(from: source, buffered: hasPending(toward: source.peer)))
        } else {
            readiness.readable.remove(source)
        }
    }

    private func timerFired() {
        switch state.phase {
        case .connecting where queued:
            queued = false
            measure.leftQueue(now)
            service.leaveQueue(self, timedOut: true)
            perform(state.queueTimeout())
        case .connecting:
            connectFailed(nil)
        case .relaying:
            let idle = settings.config.idleTimeout
            let quiet = now - lastActivity
            if quiet >= idle {
                perform(state.idleTimeout())
            } else {
                timer.again(after: idle - quiet)
            }
        case .closed:
            break
        }
    }

    private func relay(from source: Side) {
        if proxy.spliceEnabled && (source == .downstream ? splicingFromDownstream : splicingFromUpstream) {
            relaySpliced(from: source)
        } else {
            relayCopied(from: source)
        }
    }

    /// Splices from `source` into a pipe and on to its peer, a bounded number of times.
    private func relaySpliced(from source: Side) {
        let sourceFD = source == .downstream ? downstream : upstream
        let destinationFD = source == .downstream ? upstream : downstream
        for _ in 0..<Self.readsPerWakeup {
            guard let pipe = takePipe() else {
                // No descriptor for a pipe: copy instead of failing the connection.
                relayCopied(from: source)
                return
            }
            let count: Int
            do {
                switch try Socket.splice(from: sourceFD, to: pipe.writeEnd, count: pipe.capacity) {
                case .wouldBlock:
                    givePipe(pipe)
                    readiness.readable.remove(source)
                    return
                case .done(let n):
                    count = n
                }
            } catch {
                givePipe(pipe)
                if error.errno == EINVAL || error.errno == ENOSYS {
                    proxy.spliceUnsupported(error)
                    relayCopied(from: source)
                } else {
                    perform(state.reset(source))
                }
                return
            }
            if count == 0 {
                givePipe(pipe)
                perform(state.finReceived(from: source, buffered: false))
                return
            }
            lastActivity = now
            var left = count
            do {
                while left > 0 {
                    switch try Socket.splice(from: pipe.readEnd, to: destinationFD, count: left) {
                    case .done(let n) where n > 0:
                        left -= n
                        countBytes(n, from: source)
                    default:
                        // The destination is full: the rest waits in the pipe.
                        if source == .downstream { pipeToUpstream = (pipe, left) } else { pipeToDownstream = (pipe, left) }
                        // A short splice says nothing of what is left (see below).
                        blocked(toward: source.peer, shortRead: false)
                        return
                    }
                }
            } catch {
                PipePool.close(pipe)
                perform(state.reset(source.peer))
                return
            }
            givePipe(pipe)
            // Unlike a read, a splice can move less than the socket holds (it stops when
            // the pipe runs out of slots for the socket's buffers): only EAGAIN or end of
            // file says the socket is drained, so the loop goes on until one of them.
        }
        // At the bound with bytes perhaps left: the kernel will not say so again.
        proxy.poller.again(SessionTable<Session>.token(token, side: source))
    }

    /// Reads from `source` and writes straight to its peer, a bounded number of times.
    private func relayCopied(from source: Side) {
        let sourceFD = source == .downstream ? downstream : upstream
        let destinationFD = source == .downstream ? upstream : downstream
        let buffer = proxy.relayBuffer
        for _ in 0..<Self.readsPerWakeup {
            let count: Int
            do {
                switch try Socket.read(sourceFD, into: buffer.baseAddress!, count: buffer.count) {
                case .wouldBlock:
                    readiness.readable.remove(source)
                    return
                case .done(let n): count = n
                }
            } catch {
                perform(state.reset(source))
                return
            }
            if count == 0 {
                perform(state.finReceived(from: source, buffered: false))
                return
            }
            lastActivity = now
            var written = 0
            do {
                while written < count {
                    switch try Socket.write(destinationFD, from: buffer.baseAddress! + written, count: count - written) {
                    case .done(let n): written += n
                    case .wouldBlock:
                        countBytes(written, from: source)
                        if source == .downstream {
                            toUpstream.store(buffer.baseAddress! + written, count: count - written)
                        } else {
                            toDownstream.store(buffer.baseAddress! + written, count: count - written)
                        }
                        blocked(toward: source.peer, shortRead: count < buffer.count)
                        return
                    }
                }
            } catch {
                perform(state.reset(source.peer))
                return
            }
            countBytes(written, from: source)
            if count < buffer.count {
                drainedRead(from: source)
                return
            }
            // A full buffer: a bulk transfer. Splice from here on.
            if proxy.spliceEnabled {
                if source == .downstream { splicingFromDownstream = true } else { splicingFromUpstream = true }
                relaySpliced(from: source)
                return
            }
        }
        proxy.poller.again(SessionTable<Session>.token(token, side: source))
    }

    /// `destination` took only part of what was read for it: the rest waits for its next
    /// writable event. A short read before it drained the source (see `drainedRead`): a FIN
    /// seen then passes on once the rest is written.
    private func blocked(toward destination: Side, shortRead: Bool) {
        readiness.writable.remove(destination)
        let source = destination.peer
        guard shortRead else { return }
        if readiness.peerClosed.contains(source) {
            perform(state.finReceived(from: source, buffered: true))
        } else {
            readiness.readable.remove(source)
        }
    }

    /// Writes what waits for `destination`; once empty, resumes reading its source.
    private func flush(toward destination: Side) {
        let source = destination.peer
        let destinationFD = destination == .upstream ? upstream : downstream
        do {
            var n: Int
            if destination == .upstream {
                n = try toUpstream.flush(to: upstream)
            } else {
                n = try toDownstream.flush(to: downstream)
            }
            if var held = destination == .upstream ? pipeToUpstream : pipeToDownstream {
                while held.count > 0 {
                    guard case .done(let moved) = try Socket.splice(from: held.pipe.readEnd, to: destinationFD, count: held.count),
                          moved > 0 else { break }
                    held.count -= moved
                    n += moved
                }
                let remaining: (pipe: PipePool.Pipe, count: Int)? = held.count > 0 ? held : nil
                if remaining == nil { givePipe(held.pipe) }
                if destination == .upstream { pipeToUpstream = remaining } else { pipeToDownstream = remaining }
            }
            if n > 0 {
                lastActivity = now
                countBytes(n, from: source)
            }
        } catch {
            perform(state.reset(destination))
            return
        }
        if hasPending(toward: destination) {
            readiness.writable.remove(destination)
        } else {
            perform(state.drained(from: source))
        }
    }

    /// Whether bytes wait to be written to `side`.
    private func hasPending(toward side: Side) -> Bool {
        side == .upstream ? (!toUpstream.isEmpty || pipeToUpstream != nil) : (!toDownstream.isEmpty || pipeToDownstream != nil)
    }

    @inline(__always)
    private func countBytes(_ n: Int, from source: Side) {
        guard n > 0, let counted else { return }
        counted._withUnsafeGuaranteedRef { endpoint in
            if source == .downstream {
                measure.bytesIn &+= UInt64(n)
                service.bytesIn.wrappingAdd(UInt64(n), ordering: .relaxed)
                endpoint.bytesIn.wrappingAdd(UInt64(n), ordering: .relaxed)
            } else {
                measure.bytesOut &+= UInt64(n)
                service.bytesOut.wrappingAdd(UInt64(n), ordering: .relaxed)
                endpoint.bytesOut.wrappingAdd(UInt64(n), ordering: .relaxed)
            }
        }
    }

    // MARK: Takeover

    /// Parked for a takeover: out of the poller's set and its timer stopped, so that its
    /// sockets are left alone until the handover commits (the process taking over serves
    /// them) or fails (`resume()`).
    private(set) var isParked = false
    /// Its sockets went through a takeover, so another process may hold them still (the
    /// previous one until it exits, or a new one that failed until it is gone): closing this
    /// process's copy would not take them out of the poller's set, so they leave it first.
    private var sharesSockets = false

    /// A connection another process handed over (see `TakeoverMessage.Established`):
    /// parked until `resume()`, with what that process still held for each side.
    convenience init(proxy: Proxy, service: Service, settings: Service.Settings, handedOver entry: TakeoverMessage.Established,
                     downstream: Int32, upstream: Int32, endpoint: Endpoint?) {
        self.init(proxy: proxy, service: service, settings: settings, downstream: downstream)
        state = ConnectionState(relaying: entry.fromDownstream.flow, entry.fromUpstream.flow, attempts: entry.attempts,
                                retries: settings.config.retries)
        self.endpoint = endpoint
        // Set here too: observers do not run for assignments in an initializer.
        counted = endpoint.map(Unmanaged.passUnretained)
        holdsSlot = endpoint != nil
        self.upstream = upstream
        entry.fromDownstream.pending.withUnsafeBytes { if $0.count > 0 { toUpstream.store($0.baseAddress!, count: $0.count) } }
        entry.fromUpstream.pending.withUnsafeBytes { if $0.count > 0 { toDownstream.store($0.baseAddress!, count: $0.count) } }
        splicingFromDownstream = entry.fromDownstream.splicing
        splicingFromUpstream = entry.fromUpstream.splicing
        lastActivity = now - entry.quietSeconds
        let client = measure.client
        measure = ConnectionMeasure(start: entry.startedAt, attempts: entry.attempts, connectTime: Double(entry.connectMs) / 1000,
                                    bytesIn: entry.bytesIn, bytesOut: entry.bytesOut)
        measure.client = client
        isParked = true
        sharesSockets = true
    }

    /// The client's socket came through a takeover (a ClientHello being read then).
    func noteSharedSockets() {
        sharesSockets = true
    }

    /// Handed over before it was connected: started by `resume()`.
    func parkUnstarted() {
        isParked = true
        sharesSockets = true
    }

    /// Stops the connection for a takeover and describes it for the new process: nothing
    /// more is read from either side; what waits for a side is written as far as the
    /// socket takes it, and the rest (a splice pipe's bytes read out of the pipe) goes in
    /// the description. A connection not yet connected to an endpoint goes as pending: the
    /// new process starts it again with the bytes read so far.
    func park() -> TakeoverMessage.Connection {
        isParked = true
        sharesSockets = true
        // Out of the set while open: the new process's copies share these sockets, and
        // their events must not reach this one.
        proxy.poller.remove(downstream)
        if upstream >= 0 { proxy.poller.remove(upstream) }
        readiness = Readiness()
        timer.stop()
        if state.phase != .relaying {
            if queued {
                queued = false
                measure.leftQueue(now)
                service.leaveQueue(self, timedOut: false)
            }
            return .pending(TakeoverMessage.Pending(service: service.name, listen: settings.config.listen.description,
                                                    worker: proxy.index, bytes: preface))
        }
        let fromDownstream = park(toward: .upstream)
        let fromUpstream = park(toward: .downstream)
        return .established(TakeoverMessage.Established(
            service: service.name, endpoint: endpoint?.address.description ?? "", worker: proxy.index,
            fromDownstream: fromDownstream, fromUpstream: fromUpstream, quietSeconds: max(0, now - lastActivity),
            startedAt: measure.start, attempts: measure.attempts, connectMs: measure.connectTime.map(ConnectionMeasure.milliseconds) ?? 0,
            bytesIn: measure.bytesIn, bytesOut: measure.bytesOut))
    }

    /// Writes what it can of what waits for `destination`, then keeps the rest (out of a
    /// pipe too) as plain pending bytes, and returns the direction toward it as a value.
    private func park(toward destination: Side) -> RelayDirection {
        let source = destination.peer
        let destinationFD = destination == .upstream ? upstream : downstream
        var written = 0
        // A write that fails leaves the bytes to the new process, which meets the same error.
        written += (try? destination == .upstream ? toUpstream.flush(to: destinationFD) : toDownstream.flush(to: destinationFD)) ?? 0
        var bytes = destination == .upstream ? toUpstream.bytes : toDownstream.bytes
        if var held = destination == .upstream ? pipeToUpstream : pipeToDownstream {
            while bytes.isEmpty && held.count > 0,
                  case .done(let moved)? = try? Socket.splice(from: held.pipe.readEnd, to: destinationFD, count: held.count), moved > 0 {
                held.count -= moved
                written += moved
            }
            bytes += PipePool.readOut(held.pipe, count: held.count)
            givePipe(held.pipe)
            if destination == .upstream { pipeToUpstream = nil } else { pipeToDownstream = nil }
        }
        countBytes(written, from: source)
        if destination == .upstream {
            toUpstream.release()
            bytes.withUnsafeBytes { if $0.count > 0 { toUpstream.store($0.baseAddress!, count: $0.count) } }
        } else {
            toDownstream.release()
            bytes.withUnsafeBytes { if $0.count > 0 { toDownstream.store($0.baseAddress!, count: $0.count) } }
        }
        let splicing = source == .downstream ? splicingFromDownstream : splicingFromUpstream
        return RelayDirection(pending: bytes, flow: state.flow(from: source), splicing: splicing)
    }

    /// Serves a parked connection again: after a takeover that failed (this process keeps
    /// it), or once one committed (in the process that took it over). Its sockets join the
    /// poller's set again, which reports at once whatever they are ready for.
    func resume() {
        guard isParked else { return }
        isParked = false
        if state.phase == .connecting && upstream < 0 {
            if state.attempts == 0 {
                start()  // handed over before its first connect
                return
            }
        }
        // Handed over by another process: not in this proxy's table yet.
        if token == 0 { token = proxy.table.insert(self) }
        do {
            try proxy.poller.add(downstream, token: token)
            if upstream >= 0 { try proxy.poller.add(upstream, token: SessionTable<Session>.token(token, side: .upstream)) }
        } catch {
            Log.warning("service \(service.name): client \(clientDescription): \(error)")
            perform(state.reset(.downstream))
            return
        }
        switch state.phase {
        case .connecting:
            if upstream >= 0 {
                timer.start(after: settings.config.connectTimeout)
            } else {
                connectNext()  // it had left the queue: it joins it again, or connects
            }
        case .relaying:
            timer.start(after: max(0, settings.config.idleTimeout - (now - lastActivity)))
            // A FIN that waited for bytes now written: passed on here.
            for source in [Side.downstream, .upstream] where state.flow(from: source) == .finPending && !hasPending(toward: source.peer) {
                perform(state.drained(from: source))
                if state.phase == .closed { return }
            }
        case .closed:
            break
        }
    }
}
