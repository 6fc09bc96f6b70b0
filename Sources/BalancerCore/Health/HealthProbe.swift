/// The active check of one endpoint: every `interval`, a connect to the endpoint (or to
/// `port` of its host), then the exchange of the check's type (`CheckExchange`), which must
/// all be done within `timeout`. Runs on the loop and never blocks it; one check at a time,
/// so never more than one socket; the answer is read into a bounded buffer.
final class HealthProbe {
    let service: Service
    let endpoint: Endpoint
    private let loop: EventLoop
    let config: HealthCheckConfig
    /// Where the check connects: the endpoint, or `port` of its host.
    private let target: SocketAddress
    private let intervalTimer: TimerWatcher
    private let timeoutTimer: TimerWatcher
    private var fd: Int32 = -1
    private var watcher: IOWatcher?

    // The check in flight.
    private enum Phase { case connecting, writing, reading }
    private var phase = Phase.connecting
    private var exchange: any CheckExchange = SendExpectExchange(send: [], expect: [])
    /// What the current connection sends first (after the PROXY header).
    private var opening: [UInt8] = []
    private var outgoing: [UInt8] = []
    private var sent = 0
    /// The answer since the last step, at most `HealthCheckExchange.answerLimit` bytes.
    private var answer: [UInt8] = []
    private var startedAt = 0.0

    init(loop: EventLoop, service: Service, endpoint: Endpoint) {
        self.loop = loop
        self.service = service
        self.endpoint = endpoint
        config = service.config.healthCheck
        let address = endpoint.address
        target = config.port.map { SocketAddress(family: address.family, host: address.host, port: $0) } ?? address
        intervalTimer = TimerWatcher(loop: loop, handler: {})
        timeoutTimer = TimerWatcher(loop: loop, handler: {})
        intervalTimer.handler = { [unowned self] in self.probe() }
        timeoutTimer.handler = { [unowned self] in self.finish(passed: false, reason: "timeout") }
    }

    /// First check after `offset` seconds (spreading checks over the interval), then every
    /// `interval`.
    func start(offset: Double) {
        intervalTimer.start(after: offset, repeating: config.interval)
    }

    func stop() {
        intervalTimer.stop()
        abandon()
    }

    private func probe() {
        guard fd < 0 else { return }  // the previous check is still waiting for its timeout
        startedAt = HealthCheckResult.monotonicNow()
        var random: [UInt8] = []
        if config.kind.type == .tls {
            var generator = SystemRandomNumberGenerator()
            random = (0..<64).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        }
        exchange = HealthCheckExchange.make(config.kind, host: target.description, random: random)
        timeoutTimer.start(after: config.timeout)
        connect(sending: exchange.request)
    }

    /// Opens a connection that sends the PROXY header (where the service uses one), then
    /// `bytes`.
    private func connect(sending bytes: [UInt8]) {
        do {
            fd = try Socket.open(family: target.family)
        } catch {
            Log.warning("service \(service.name): cannot check \(endpoint.config.name): \(error.reason)")
            abandon()
            return
        }
        opening = bytes
        let watcher = IOWatcher(loop: loop, fd: fd, handler: { [unowned self] _ in self.ready() })
        if let old = self.watcher { loop.retire(old) }
        self.watcher = watcher
        do {
            switch try Socket.connect(fd, to: target) {
            case .done:
                connected()
            case .wouldBlock:
                phase = .connecting
                watcher.watch(.write)
            }
        } catch {
            if error.isLocalResourceShortage {
                Log.warning("service \(service.name): cannot check \(endpoint.config.name): \(error.reason)")
                abandon()
            } else {
                finish(passed: false, reason: error.reason)
            }
        }
    }

    private func ready() {
        switch phase {
        case .connecting:
            let code = Socket.pendingError(fd)
            if code == 0 {
                connected()
            } else {
                finish(passed: false, reason: SystemError(errno: code, operation: "check").reason)
            }
        case .writing:
            flush()
        case .reading:
            readAnswer()
        }
    }

    /// An endpoint that expects the PROXY protocol gets the LOCAL form first, so it does
    /// not log a protocol error for every check.
    private func connected() {
        outgoing = ProxyProtocolHeader.local(service.config.proxyProtocol) + opening
        sent = 0
        phase = .writing
        flush()
    }

    private func flush() {
        while sent < outgoing.count {
            let result = outgoing.withUnsafeBytes { bytes in
                Result { () throws(SystemError) in try Socket.write(fd, from: bytes.baseAddress! + sent, count: bytes.count - sent) }
            }
            switch result {
            case .success(.done(let count)):
                sent += count
            case .success(.wouldBlock):
                watcher?.watch(.write)
                return
            case .failure(let error):
                finish(passed: false, reason: error.reason)
                return
            }
        }
        answer.removeAll(keepingCapacity: true)
        follow(exchange.judge(answer[...], ended: false))
    }

    private func readAnswer() {
        let limit = HealthCheckExchange.answerLimit
        if answer.capacity < limit { answer.reserveCapacity(limit) }
        var chunk = [UInt8](repeating: 0, count: limit - answer.count)
        let result = chunk.withUnsafeMutableBytes { bytes in
            Result { () throws(SystemError) in try Socket.read(fd, into: bytes.baseAddress!, count: bytes.count) }
        }
        switch result {
        case .success(.done(let count)):
            answer += chunk.prefix(count)
            let ended = count == 0 || answer.count >= limit
            let verdict = exchange.judge(answer[...], ended: ended)
            if ended && verdict == .more {
                finish(passed: false, reason: "unexpected answer")
            } else {
                follow(verdict)
            }
        case .success(.wouldBlock):
            return
        case .failure(let error):
            // A reset after an answer (a server that refuses and closes at once) is judged
            // on that answer.
            if !answer.isEmpty, case .fail(let reason) = exchange.judge(answer[...], ended: true) {
                finish(passed: false, reason: reason)
            } else {
                finish(passed: false, reason: error.reason)
            }
        }
    }

    private func follow(_ verdict: CheckVerdict) {
        switch verdict {
        case .pass(let reason):
            finish(passed: true, reason: reason)
        case .fail(let reason):
            finish(passed: false, reason: reason)
        case .more:
            phase = .reading
            watcher?.watch(.read)
        case .send(let bytes):
            answer.removeAll(keepingCapacity: true)
            outgoing = bytes
            sent = 0
            phase = .writing
            flush()
        case .reconnect(let bytes):
            closeSocket()
            answer.removeAll(keepingCapacity: true)
            connect(sending: bytes)
        }
    }

    private func finish(passed: Bool, reason: String) {
        let duration = HealthCheckResult.monotonicNow() - startedAt
        abandon()
        let result = HealthCheckResult(ok: passed, reason: reason, duration: duration, at: RuntimeInfo.wallClock())
        service.recordCheck(endpoint, result: result, now: loop.now)
    }

    /// Drops the check in flight, if any, without a verdict.
    private func abandon() {
        timeoutTimer.stop()
        closeSocket()
        answer = []
        outgoing = []
    }

    private func closeSocket() {
        watcher?.stop()
        if fd >= 0 {
            Socket.close(fd)
            fd = -1
        }
    }
}
