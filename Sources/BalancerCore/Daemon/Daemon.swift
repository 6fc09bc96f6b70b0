import Glibc

/// The running daemon: loads the configuration, binds, serves on the default loop, and
/// drains on SIGTERM/SIGINT. Start-up order: listeners, then (as they come) health checks
/// and the admin port; shutdown stops them in reverse.
public final class Daemon {
    public let configPath: String
    private let logLevelOverride: LogLevel?
    private let notifier = SystemdNotifier()
    private var loop: EventLoop!
    private var proxy: Proxy!
    private var healthChecker: HealthChecker!
    private var admin: AdminServer!
    private var info: RuntimeInfo!
    private var config: Config!
    private var signals: [SignalWatcher] = []
    private var drainTimers: [TimerWatcher] = []
    private var shuttingDown = false

    public init(configPath: String, logLevelOverride: LogLevel?) {
        self.configPath = configPath
        self.logLevelOverride = logLevelOverride
    }

    /// Runs until shutdown. Returns the process exit status: 0 after a clean shutdown, 1
    /// for a configuration or start-up error.
    public func run() -> Int32 {
        Log.configureFromEnvironment()
        signal(SIGPIPE, SIG_IGN)
        // A parent may hand down blocked signals (test runners and some supervisors do);
        // SIGTERM, SIGINT and SIGHUP must reach the loop whatever the parent did.
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)

        do {
            config = try ConfigLoader.load(path: configPath)
        } catch {
            for problem in error.errors { printError(problem.description) }
            return 1
        }
        Log.setLevel(logLevelOverride ?? config.logLevel)
        raiseFileLimit()

        loop = EventLoop.makeDefault()
        info = RuntimeInfo(configPath: configPath)
        proxy = Proxy(loop: loop, config: config)
        admin = AdminServer(loop: loop, address: config.admin.listen,
                            routes: AdminRoutes(info: info) { [unowned self] in self.proxy.services })
        do throws(SystemError) {
            try proxy.bindListeners()
            do throws(SystemError) {
                try admin.bind()
            } catch {
                proxy.closeListeners()
                throw error
            }
        } catch {
            Log.error("cannot start: \(error)")
            printErrorIfNotLogged(error.description)
            return 1
        }
        // Start in order: listeners, health checks, the admin port.
        proxy.startAccepting()
        healthChecker = HealthChecker(loop: loop)
        healthChecker.start(services: proxy.services)
        admin.start()

        watchSignals()
        Log.notice("balancerd \(BalancerVersion.string) started: \(config.services.count) service(s), \(config.endpointCount) endpoint(s), admin on \(config.admin.listen), config \(configPath)")
        notifier.notify("READY=1\nSTATUS=serving \(config.services.count) services")
        loop.run()
        admin.close()
        Log.notice("balancerd stopped")
        return 0
    }

    private func watchSignals() {
        for number in [SIGTERM, SIGINT] {
            let watcher = SignalWatcher(loop: loop, signal: number) { [unowned self] in self.shutdown(signal: number) }
            watcher.start()
            signals.append(watcher)
        }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) {
            Log.warning("SIGHUP received: configuration reload is not available in this build; the configuration in force is unchanged")
        }
        hup.start()
        signals.append(hup)
    }

    /// Stops accepting at once; open connections go on until they end or their service's
    /// `drainTimeout` passes. A second signal closes everything now.
    private func shutdown(signal number: Int32) {
        let name = number == SIGTERM ? "SIGTERM" : "SIGINT"
        if shuttingDown {
            Log.notice("\(name) again: closing \(proxy.openConnections) open connections now")
            proxy.closeSessions()
            loop.stop()
            return
        }
        shuttingDown = true
        healthChecker.stop()
        notifier.notify("STOPPING=1\nSTATUS=draining \(proxy.openConnections) connections")
        proxy.closeListeners()
        let open = proxy.openConnections
        if open == 0 {
            Log.notice("\(name): no open connections; exiting")
            loop.stop()
            return
        }
        Log.notice("\(name): stopped accepting; draining \(open) open connections for up to \(DurationText.format(config.longestDrain))")
        proxy.onLastSessionClosed = { [unowned self] in
            Log.notice("drain complete")
            self.loop.stop()
        }
        for service in proxy.services where service.activeConnections > 0 {
            let timer = TimerWatcher(loop: loop) { [unowned self, unowned service] in
                if service.activeConnections > 0 {
                    Log.notice("service \(service.name): drainTimeout passed; closing \(service.activeConnections) connections")
                    self.proxy.closeSessions(of: service)
                }
            }
            timer.start(after: service.config.drainTimeout)
            drainTimers.append(timer)
        }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit: each connection costs two descriptors.
    private func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        Log.info("file descriptor limit: \(limit.rlim_cur)")
    }

    private func printError(_ text: String) {
        let line = Array("balancerd: \(text)\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    private func printErrorIfNotLogged(_ text: String) {
        if !Log.isEnabled(.error) { printError(text) }
    }
}
