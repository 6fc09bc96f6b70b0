import Glibc

/// The running daemon: loads the configuration, binds, serves on its worker loops (worker 0
/// is the default loop, which also runs signals, health checks, the admin port and the file
/// watcher), and drains on SIGTERM/SIGINT. Start-up order: listeners, then (as they come)
/// health checks and the admin port; shutdown stops them in reverse.
public final class Daemon {
    public let configPath: String
    private let logLevelOverride: LogLevel?
    private let notifier = SystemdNotifier()
    private var loop: EventLoop!
    private var workers: Workers!
    private var healthChecker: HealthChecker!
    private var admin: AdminServer!
    private var info: RuntimeInfo!
    /// The configuration file as loaded: the base of the service map.
    private var fileConfig: Config!
    /// The service map in force: `fileConfig` with etcd's services and endpoints and what
    /// every name resolved to.
    private var config: Config!
    private var dns: DNSDiscovery!
    private var etcd: EtcdDiscovery?
    /// Until the first read from etcd (or its dialTimeout), READY=1 waits.
    private var readyTimer: TimerWatcher?
    /// What the admin port set at run time: one more source of the service map.
    private var runtime: RuntimeController!
    private var signals: [SignalWatcher] = []
    private var configWatcher: ConfigWatcher!
    private var watchdog: TimerWatcher?
    private var drainTimers: [TimerWatcher] = []
    private var shuttingDown = false
    /// Started with `--takeover`: takes everything over from the running daemon instead of binding.
    private let takeover: Bool
    /// The command line's arguments after the program name, and the executable as it was
    /// at start (a package upgrade may replace the file): what SIGUSR2 starts the new one with.
    private let arguments: [String]
    private let executable: String
    private var takeoverServer: TakeoverServer?
    /// The process this one handed everything over to, once it committed.
    private var successor: pid_t?

    public init(configPath: String, logLevelOverride: LogLevel?, takeover: Bool = false, arguments: [String] = []) {
        self.takeover = takeover
        self.arguments = arguments
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &path, Int(PATH_MAX))
        executable = length > 0 ? String(decoding: path[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        // Absolute, so that the file watcher and /stats do not depend on the working directory.
        if configPath.hasPrefix("/") {
            self.configPath = configPath
        } else {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            let cwd = getcwd(&buffer, buffer.count) != nil ? buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } : "."
            self.configPath = cwd + "/" + configPath
        }
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
            fileConfig = try ConfigLoader.load(path: configPath)
        } catch {
            for problem in error.errors { printError(problem.description) }
            return 1
        }
        var handover: TakeoverClient?
        if takeover {
            do throws(TakeoverClient.Failure) {
                let client = try TakeoverClient(path: TakeoverServer.socketPath(admin: fileConfig.admin.listen))
                try client.receiveEverything()
                handover = client
            } catch {
                printError("--takeover: \(error)")
                return 1
            }
        }
        runtime = RuntimeController(stateFile: fileConfig.admin.stateFile)
        if let state = handover?.state { runtime.adopt(encoded: state.overrides) }
        // Names have no endpoints until they first resolve, and etcd adds nothing until its
        // first read, moments after start: the file's services are served at once.
        config = ServiceMap.materialize(fileConfig, answers: [:], overrides: runtime.overrides)
        mapApplied(config)
        Log.setLevel(logLevelOverride ?? config.logLevel)
        raiseFileLimit()

        loop = EventLoop.makeDefault()
        info = RuntimeInfo(configPath: configPath)
        workers = Workers(mainLoop: loop, config: config, count: handover?.workers)
        if let handover {
            if handover.workers != Workers.resolveCount(config.workers) {
                Log.warning("takeover: running \(handover.workers) worker loop(s), as the previous process did (one per listening socket it had); workers: takes effect at the next start")
            }
            workers.handedOver = handover.listeners
        }
        workers.activation = SocketActivation.fromEnvironment()
        dns = DNSDiscovery(loop: loop)
        admin = AdminServer(loop: loop, address: config.admin.listen,
                            routes: AdminRoutes(info: info, services: { [unowned self] in self.workers.services },
                                                workers: { [unowned self] in self.workers.figures },
                                                dns: { [unowned self] in self.dns.statuses },
                                                etcd: { [unowned self] in self.etcd?.status },
                                                control: { [unowned self] in self.runtime.perform($0) },
                                                access: { [unowned self] in AdminAccess(self.config.admin) },
                                                accessLog: { [unowned self] in self.workers.accessLog.figures },
                                                listeners: { [unowned self] in self.workers.listenerFigures }))
        runtime.services = { [unowned self] in self.workers.services }
        runtime.reapply = { [unowned self] in self.applyServiceMap(trigger: "admin") }
        runtime.closeSessions = { [unowned self] in self.workers.closeSessions(of: $0, endpoint: $1, because: .adminClose) }
        do throws(SystemError) {
            try workers.accessLog.start(config.accessLog)
            try workers.bindListeners(config)
            do throws(SystemError) {
                try admin.bind(passed: handover?.adminSocket ?? workers.activation.take(config.admin.listen))
            } catch {
                workers.closeListeners()
                throw error
            }
        } catch {
            handover?.refuse("cannot start: \(error)")
            Log.error("cannot start: \(error)")
            printErrorIfNotLogged(error.description)
            return 1
        }
        if let handover {
            guard adopt(handover) else { return 1 }
        }
        // Start in order: listeners, name resolution, health checks, the admin port.
        workers.start()
        dns.onChange = { [unowned self] in self.applyServiceMap(trigger: "dns") }
        dns.follow(fileConfig.dnsNames, resolvers: fileConfig.resolvers)
        followEtcd(fileConfig)
        healthChecker = HealthChecker(loop: loop)
        healthChecker.start(services: workers.services)
        admin.start()
        startTakeoverServer()
        configWatcher = ConfigWatcher(loop: loop, path: configPath)
        configWatcher.onChange = { [unowned self] in self.reload(trigger: "file changed") }
        configWatcher.start()
        startWatchdog()
        for (address, passed) in workers.activation.sockets {
            Log.warning("socket \(passed.name) (fd \(passed.fd)) passed by systemd for \(address) matches no service yet; kept for a reload")
        }

        watchSignals()
        // MAINPID= first: the previous process sends it before it releases this one.
        handover?.awaitReleased()
        Log.notice("balancerd \(BalancerVersion.string) started: \(config.services.count) service(s), \(config.endpointCount) endpoint(s), \(workers.count) worker loop(s), admin on \(config.admin.listen), config \(configPath)")
        if etcd == nil {
            notifier.notify("READY=1\nSTATUS=\(statusLine())")
        } else {
            // READY=1 once the first read from etcd is applied, or after dialTimeout.
            let timer = TimerWatcher(loop: loop) { [unowned self] in self.announceReady() }
            timer.start(after: fileConfig.discovery?.etcd?.dialTimeout ?? 2)
            readyTimer = timer
            etcd?.onFirstRead = { [unowned self] in
                self.applyServiceMap(trigger: "etcd")
                self.announceReady()
            }
        }
        loop.run()
        // Handed over: the successor has its own takeover socket at the path by now.
        takeoverServer?.stop(removing: successor == nil)
        takeoverServer = nil
        workers.stop()
        admin.close()
        if let successor {
            Log.notice("balancerd handed over to pid \(successor); exiting")
        } else {
            Log.notice("balancerd stopped")
        }
        return 0
    }

    /// `--takeover`: takes the connections and the state handed over, and commits. Until
    /// the commit this process serves nothing; after it, everything is its own.
    private func adopt(_ handover: TakeoverClient) -> Bool {
        workers.closeUnusedHandedOver()
        var dropped = 0
        for (entry, descriptors) in handover.connections {
            if let reason = workers.adopt(entry, descriptors: descriptors) {
                dropped += 1
                Log.warning("takeover: a connection was closed: \(reason)")
            }
        }
        if let state = handover.state {
            workers.restore(state.services, now: loop.now)
            info.restore(state)
        }
        do throws(TakeoverClient.Failure) {
            try handover.commit()
        } catch {
            Log.error("takeover: \(error); the running balancerd keeps serving")
            printErrorIfNotLogged("--takeover: \(error)")
            return false
        }
        workers.resumeParked()
        Log.notice("takeover: took over from pid \(handover.peer): \(handover.listeners.count) listen address(es), \(handover.connections.count - dropped) connection(s)")
        return true
    }

    /// Listens for a process that takes over (`--takeover`, or the one SIGUSR2 starts).
    private func startTakeoverServer() {
        let server = TakeoverServer(loop: loop, workers: workers, path: TakeoverServer.socketPath(admin: config.admin.listen),
                                    executable: executable, arguments: arguments)
        server.state = { [unowned self] in
            TakeoverMessage.State(generation: info.generation, startTime: info.startTime, reloadSuccesses: info.reloadSuccesses,
                                  reloadFailures: info.reloadFailures, overrides: runtime.encodedOverrides, services: workers.takeoverFigures())
        }
        server.adminSocket = { [unowned self] in self.admin.socket }
        server.onCommitted = { [unowned self] pid in
            self.successor = pid
            self.notifier.notify("MAINPID=\(pid)\nSTATUS=handed over to pid \(pid)")
            self.loop.stop()
        }
        do throws(SystemError) {
            try server.start()
            takeoverServer = server
        } catch {
            Log.warning("takeover: cannot listen on \(server.path): \(error); this daemon cannot be taken over")
        }
    }

    private func watchSignals() {
        for number in [SIGTERM, SIGINT] {
            let watcher = SignalWatcher(loop: loop, signal: number) { [unowned self] in self.shutdown(signal: number) }
            watcher.start()
            signals.append(watcher)
        }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] in self.reload(trigger: "SIGHUP") }
        hup.start()
        signals.append(hup)
        let usr1 = SignalWatcher(loop: loop, signal: SIGUSR1) { [unowned self] in self.workers.accessLog.reopen() }
        usr1.start()
        signals.append(usr1)
        let usr2 = SignalWatcher(loop: loop, signal: SIGUSR2) { [unowned self] in
            guard !self.shuttingDown, let server = self.takeoverServer else { return }
            server.startSuccessor()
        }
        usr2.start()
        signals.append(usr2)
    }

    /// Stops accepting at once; open connections go on until they end or their service's
    /// `drainTimeout` passes. A second signal closes everything now.
    private func shutdown(signal number: Int32) {
        let name = number == SIGTERM ? "SIGTERM" : "SIGINT"
        if shuttingDown {
            Log.notice("\(name) again: closing \(workers.openConnections) open connections now")
            workers.closeSessions()
            loop.stop()
            return
        }
        shuttingDown = true
        // A draining daemon has nothing to hand over.
        takeoverServer?.stop(removing: true)
        takeoverServer = nil
        configWatcher.stop()
        healthChecker.stop()
        dns.stop()
        etcd?.stop()
        notifier.notify("STOPPING=1\nSTATUS=draining \(workers.openConnections) connections")
        workers.closeListeners()
        let open = workers.openConnections
        if open == 0 {
            Log.notice("\(name): no open connections; exiting")
            loop.stop()
            return
        }
        Log.notice("\(name): stopped accepting; draining \(open) open connections for up to \(DurationText.format(config.longestDrain))")
        for service in workers.services where service.activeConnections > 0 {
            let timer = TimerWatcher(loop: loop) { [unowned self, unowned service] in
                let open = service.activeConnections
                if open > 0 {
                    Log.notice("service \(service.name): drainTimeout passed; closing \(open) connections")
                    self.workers.closeSessions(of: service)
                }
            }
            timer.start(after: service.config.drainTimeout)
            drainTimers.append(timer)
        }
        workers.drain { [unowned self] in
            Log.notice("drain complete")
            self.loop.stop()
        }
    }

    /// Reads the configuration file again and switches to it, or keeps the one in force.
    ///
    /// The new file is validated whole before anything changes; listen addresses kept by
    /// both keep their sockets; a failure of any kind leaves everything as it was, is
    /// logged with its position, and is recorded for the admin port.
    private func reload(trigger: String) {
        guard !shuttingDown else { return }
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())")
        let started = loop.now
        let before = ConfigWatcher.Signature.of(path: configPath)
        defer {
            notifier.notify("READY=1\nSTATUS=\(statusLine())")
        }
        let nextFile: Config
        do {
            nextFile = try ConfigLoader.load(path: configPath)
        } catch {
            if trigger == "file changed" && ConfigWatcher.Signature.of(path: configPath) != before {
                // Read while still being written: the watcher will call again once it is still.
                Log.info("reload (\(trigger)): the file changed while it was read; waiting for it to settle")
                return
            }
            for problem in error.errors { Log.error("reload rejected: \(problem)") }
            rejectReload(error.errors.map(\.description).joined(separator: "; "))
            return
        }
        configWatcher.acceptCurrent()
        // Names that stay keep their last answer until they are resolved again, below;
        // etcd's keys are read again over the new defaults.
        if let settings = nextFile.discovery?.etcd { etcd?.update(config: settings, template: nextFile.serviceDefaults) }
        let next = desiredMap(file: nextFile)

        var newAdmin: AdminServer?
        if next.admin.listen != admin.address {
            let candidate = AdminServer(loop: loop, address: next.admin.listen, routes: admin.routes)
            do {
                try candidate.bind(passed: workers.activation.take(next.admin.listen))
            } catch {
                Log.error("reload rejected: admin.listen: \(error)")
                rejectReload("admin.listen: \(error)")
                return
            }
            newAdmin = candidate
        }
        let logChange: AccessLog.Change
        do {
            logChange = try workers.accessLog.prepare(next.accessLog)
        } catch {
            newAdmin?.close()
            Log.error("reload rejected: accessLog.path: \(error)")
            rejectReload("accessLog.path: \(error)")
            return
        }
        let changes: ReloadChanges
        do {
            changes = try workers.apply(next)
        } catch {
            newAdmin?.close()
            logChange.cancel()
            Log.error("reload rejected: \(error); the configuration in force is unchanged")
            rejectReload(error.description)
            return
        }
        workers.accessLog.commit(logChange)
        if let newAdmin {
            admin.close()
            admin = newAdmin
            admin.start()
        }
        healthChecker.sync(services: workers.services)
        Log.setLevel(logLevelOverride ?? next.logLevel)
        fileConfig = nextFile
        config = next
        mapApplied(next)
        // Every name is resolved again at once.
        dns.follow(next.dnsNames, resolvers: nextFile.resolvers)
        if (nextFile.discovery?.etcd == nil) != (etcd == nil) { followEtcd(nextFile) }
        info.recordReload(ok: true, error: nil)
        let elapsed = Int(((loop.nowUpdated - started) * 1000).rounded())
        Log.notice("reload (\(trigger)) complete: generation \(info.generation), \(next.services.count) service(s), \(next.endpointCount) endpoint(s); \(changes); took \(elapsed) ms")
    }

    /// Applies the service map rebuilt from the file in force, the latest answers of its
    /// names and the runtime overrides: the same differ as a reload (endpoints that stay keep their health and
    /// counters, new ones are added, vanished ones drain), with no listener change.
    private func applyServiceMap(trigger: String) {
        guard !shuttingDown else { return }
        let next = desiredMap(file: fileConfig)
        let changes: ReloadChanges
        do {
            changes = try workers.apply(next)
        } catch {
            Log.error("\(trigger): cannot apply the new service map: \(error)")
            return
        }
        config = next
        mapApplied(next)
        healthChecker.sync(services: workers.services)
        // etcd may have brought names of its own: new ones are resolved at once.
        dns.follow(next.dnsNames, resolvers: fileConfig.resolvers, resolveKnown: false)
        let line = "\(trigger): service map updated: \(next.services.count) service(s), \(next.endpointCount) endpoint(s); \(changes)"
        if changes == ReloadChanges() { Log.debug(line) } else { Log.notice(line) }
        notifier.notify("STATUS=\(statusLine())")
    }

    /// The desired service map from every source: the file, etcd's keys (services that
    /// clash, or whose new listen address cannot be bound, are rejected alone) and the
    /// answers of every name.
    private func desiredMap(file: Config) -> Config {
        guard let etcd else { return ServiceMap.materialize(file, answers: dns.answers, overrides: runtime.overrides) }
        var (base, rejected) = etcd.catalog.merged(into: file)
        let bound = workers.boundAddresses
        base.services.removeAll { service in
            guard service.source == "etcd", !bound.contains(service.listenKey) else { return false }
            do throws(SystemError) {
                if service.transport == .udp {
                    try DatagramSocket.checkBindable(service.listen)
                } else {
                    try Socket.checkBindable(service.listen)
                }
                return false
            } catch {
                rejected.append(EtcdCatalog.Rejection(key: "\(etcd.catalog.prefix)/services/\(service.name)", revision: etcd.revision,
                                                      error: "listen \(service.listen): \(error.reason)"))
                return true
            }
        }
        let newly = rejected.filter { !etcd.rejected.contains($0) }
        for rejection in newly { Log.error("etcd: key \(rejection.key) (revision \(rejection.revision)) rejected: \(rejection.error)") }
        etcd.rejected = rejected
        return ServiceMap.materialize(base, answers: dns.answers, overrides: runtime.overrides)
    }

    /// Lets the runtime state forget endpoints that went, once the map is complete: while
    /// etcd has not been read yet, its endpoints are missing, not gone.
    private func mapApplied(_ map: Config) {
        if fileConfig.discovery?.etcd != nil && (etcd?.revision ?? 0) == 0 { return }
        runtime.mapApplied(map, answers: dns?.answers ?? [:])
    }

    /// Starts or stops following etcd as the file asks.
    private func followEtcd(_ file: Config) {
        if let settings = file.discovery?.etcd {
            guard etcd == nil else { return }
            let discovery = EtcdDiscovery(loop: loop, config: settings, template: file.serviceDefaults)
            discovery.onChange = { [unowned self] in self.applyServiceMap(trigger: "etcd") }
            etcd = discovery
            discovery.start()
        } else if let discovery = etcd {
            discovery.stop()
            etcd = nil
            applyServiceMap(trigger: "discovery removed")
        }
    }

    private func announceReady() {
        guard let timer = readyTimer else { return }
        timer.stop()
        readyTimer = nil
        notifier.notify("READY=1\nSTATUS=\(statusLine())")
    }

    /// With `WATCHDOG_USEC` set, pings systemd at half that period from the event loop
    /// itself: a stuck loop stops the pings and systemd restarts the daemon.
    private func startWatchdog() {
        guard notifier.isEnabled, let usecText = getenv("WATCHDOG_USEC").map({ String(cString: $0) }),
              let usec = Double(usecText), usec > 0 else { return }
        if let pidText = getenv("WATCHDOG_PID").map({ String(cString: $0) }), Int32(pidText) != getpid() { return }
        let period = usec / 1_000_000 / 2
        let timer = TimerWatcher(loop: loop) { [unowned self] in
            self.notifier.notify("WATCHDOG=1\nSTATUS=\(self.statusLine())")
        }
        timer.start(after: 0, repeating: period)
        watchdog = timer
        Log.info("watchdog: pinging systemd every \(DurationText.format(period))")
    }

    private func rejectReload(_ error: String) {
        info.recordReload(ok: false, error: error)
        Log.error("reload failed: keeping configuration generation \(info.generation)")
    }

    private func statusLine() -> String {
        let up = workers.services.reduce(0) { $0 + $1.upEndpoints }
        return "\(workers.services.count) services, \(up)/\(config.endpointCount) endpoints up, \(workers.openConnections) open connections"
    }

    private static func monotonicMicroseconds() -> Int {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return spec.tv_sec * 1_000_000 + spec.tv_nsec / 1000
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
