/// The active check of one endpoint: every `interval`, a TCP connect that must complete
/// within `timeout`. Runs on the loop and never blocks it; one check at a time.
final class HealthProbe {
    let service: Service
    let endpoint: Endpoint
    private let loop: EventLoop
    let config: HealthCheckConfig
    private let intervalTimer: TimerWatcher
    private let timeoutTimer: TimerWatcher
    private var fd: Int32 = -1
    private var watcher: IOWatcher?

    init(loop: EventLoop, service: Service, endpoint: Endpoint) {
        self.loop = loop
        self.service = service
        self.endpoint = endpoint
        config = service.config.healthCheck
        intervalTimer = TimerWatcher(loop: loop, handler: {})
        timeoutTimer = TimerWatcher(loop: loop, handler: {})
        intervalTimer.handler = { [unowned self] in self.probe() }
        timeoutTimer.handler = { [unowned self] in
            self.finish(passed: false, reason: "check timed out after \(DurationText.format(self.config.timeout))")
        }
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
        do {
            fd = try Socket.open(family: endpoint.address.family)
        } catch {
            Log.warning("service \(service.name): cannot check \(endpoint.config.name): \(error.reason)")
            return
        }
        let watcher = IOWatcher(loop: loop, fd: fd, handler: { [unowned self] _ in
            let code = Socket.pendingError(self.fd)
            if code == 0 {
                self.sendLocalHeader()
                self.finish(passed: true, reason: "check passed")
            } else {
                self.finish(passed: false, reason: SystemError(errno: code, operation: "check").reason)
            }
        })
        if let old = self.watcher { loop.retire(old) }
        self.watcher = watcher
        do {
            switch try Socket.connect(fd, to: endpoint.address) {
            case .done:
                sendLocalHeader()
                finish(passed: true, reason: "check passed")
            case .wouldBlock:
                watcher.watch(.write)
                timeoutTimer.start(after: config.timeout)
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

    /// An endpoint that expects the PROXY protocol gets the LOCAL form from a check, so it
    /// does not log a protocol error for every check.
    private func sendLocalHeader() {
        let header = ProxyProtocolHeader.local(service.config.proxyProtocol)
        guard !header.isEmpty else { return }
        header.withUnsafeBytes { _ = try? Socket.write(fd, from: $0.baseAddress!, count: $0.count) }
    }

    private func finish(passed: Bool, reason: String) {
        abandon()
        service.recordCheck(endpoint, passed: passed, reason: reason, now: loop.now)
    }

    /// Drops the check in flight, if any, without a verdict.
    private func abandon() {
        timeoutTimer.stop()
        watcher?.stop()
        if fd >= 0 {
            Socket.close(fd)
            fd = -1
        }
    }
}
