import CCares
import Glibc

/// A DNS resolver on an event loop: one c-ares channel whose sockets are watched by the
/// loop's io watchers and whose timeouts run on one loop timer, so that a slow or silent
/// nameserver never blocks the loop. No thread, no `getaddrinfo`.
///
/// c-ares consults /etc/hosts first (lookups "fb"), then the nameservers given, or those
/// of /etc/resolv.conf. It retries a truncated UDP answer over TCP, tries the nameservers
/// in order, `attempts` times each, and checks every answer's shape (a malformed one is an
/// error, never a crash). Answers arrive through the completion closures, on the loop.
final class DNSClient {
    /// Why a name gave no addresses.
    enum Failure: Error, Equatable {
        /// Authoritative: no such name (NXDOMAIN), or no records of the type asked.
        case notFound(String)
        /// No usable answer: timeout, SERVFAIL, REFUSED, unreachable or malformed.
        case failed(String)

        var reason: String {
            switch self {
            case .notFound(let reason), .failed(let reason): return reason
            }
        }
    }

    struct StartError: Error, CustomStringConvertible {
        let description: String
    }

    /// One SRV record.
    struct ServiceRecord: Equatable {
        var target: String
        var port: UInt16
        var weight: Int
        var priority: Int
    }

    private let loop: EventLoop
    private var channel: ares_channel?
    private let timer: TimerWatcher
    private var watchers: [Int32: IOWatcher] = [:]

    /// The completion of one query, carried through c-ares as its `arg`.
    private final class Pending<Value> {
        weak var client: DNSClient?
        let done: (Result<Value, Failure>) -> Void
        init(_ client: DNSClient, _ done: @escaping (Result<Value, Failure>) -> Void) {
            self.client = client
            self.done = done
        }
    }

    init(loop: EventLoop, config: ResolverConfig?) throws(StartError) {
        self.loop = loop
        timer = TimerWatcher(loop: loop, handler: {})
        _ = ares_library_init(ARES_LIB_INIT_ALL)
        var options = ares_options()
        var mask: Int32 = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS
        options.sock_state_cb = { data, fd, readable, writable in
            guard let data else { return }
            Unmanaged<DNSClient>.fromOpaque(data).takeUnretainedValue().socketChanged(fd, readable: readable != 0, writable: writable != 0)
        }
        options.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        if let config {
            options.timeout = Int32(max(1, (config.timeout * 1000).rounded()))
            options.tries = Int32(config.attempts)
            mask |= ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES
        }
        let lookups = strdup("fb")
        defer { free(lookups) }
        options.lookups = lookups
        var created: ares_channel?
        let status = ares_init_options(&created, &options, mask)
        guard status == ARES_SUCCESS, let created else {
            throw StartError(description: "cannot start the DNS resolver: \(String(cString: ares_strerror(status)))")
        }
        channel = created
        if let config, !config.nameservers.isEmpty {
            let list = config.nameservers.map(\.description).joined(separator: ",")
            let status = ares_set_servers_ports_csv(created, list)
            guard status == ARES_SUCCESS else {
                ares_destroy(created)
                channel = nil
                throw StartError(description: "cannot use nameservers \(list): \(String(cString: ares_strerror(status)))")
            }
        }
        timer.handler = { [unowned self] in
            if let channel = self.channel { ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD) }
            self.rearmTimer()
        }
    }

    /// Cancels what is in flight (its completions are not called) and closes the sockets.
    func close() {
        guard let channel else { return }
        self.channel = nil
        ares_destroy(channel)
        for watcher in watchers.values { watcher.stop() }
        watchers.removeAll()
        timer.stop()
    }

    deinit { close() }

    /// The IPv4 and IPv6 addresses of `host` (port 0), as c-ares returns them.
    func addresses(of host: String, _ done: @escaping (Result<[SocketAddress], Failure>) -> Void) {
        guard let channel else { return }
        var hints = ares_addrinfo_hints()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        // Sorting by RFC 6724 would open a UDP socket per address; the caller sorts.
        hints.ai_flags = ARES_AI_NOSORT
        let pending = Unmanaged.passRetained(Pending<[SocketAddress]>(self, done)).toOpaque()
        ares_getaddrinfo(channel, host, nil, &hints, { arg, status, _, result in
            let pending = Unmanaged<Pending<[SocketAddress]>>.fromOpaque(arg!).takeRetainedValue()
            defer { if let result { ares_freeaddrinfo(result) } }
            guard pending.client?.channel != nil, status != ARES_EDESTRUCTION, status != ARES_ECANCELLED else { return }
            if status != ARES_SUCCESS {
                pending.done(.failure(DNSClient.failure(status)))
                return
            }
            var addresses: [SocketAddress] = []
            var node = result?.pointee.nodes
            while let current = node {
                if let raw = current.pointee.ai_addr, let address = SocketAddress.from(sockaddr: raw, port: 0) {
                    addresses.append(address)
                }
                node = current.pointee.ai_next
            }
            pending.done(addresses.isEmpty ? .failure(.notFound("no A or AAAA records")) : .success(addresses))
        }, pending)
        rearmTimer()
    }

    /// The SRV records of `name`.
    func services(of name: String, _ done: @escaping (Result<[ServiceRecord], Failure>) -> Void) {
        guard let channel else { return }
        let pending = Unmanaged.passRetained(Pending<[ServiceRecord]>(self, done)).toOpaque()
        // Class IN (1), type SRV (33); ares_search applies the resolv.conf search list.
        ares_search(channel, name, 1, 33, { arg, status, _, answer, length in
            let pending = Unmanaged<Pending<[ServiceRecord]>>.fromOpaque(arg!).takeRetainedValue()
            guard pending.client?.channel != nil, status != ARES_EDESTRUCTION, status != ARES_ECANCELLED else { return }
            guard status == ARES_SUCCESS, let answer else {
                pending.done(.failure(DNSClient.failure(status == ARES_SUCCESS ? ARES_EBADRESP : status)))
                return
            }
            var reply: UnsafeMutablePointer<ares_srv_reply>?
            let parsed = ares_parse_srv_reply(answer, length, &reply)
            defer { if let reply { ares_free_data(reply) } }
            guard parsed == ARES_SUCCESS else {
                pending.done(.failure(DNSClient.failure(parsed)))
                return
            }
            var records: [ServiceRecord] = []
            var node = reply
            while let current = node {
                records.append(ServiceRecord(target: String(cString: current.pointee.host), port: current.pointee.port,
                                             weight: Int(current.pointee.weight), priority: Int(current.pointee.priority)))
                node = current.pointee.next
            }
            pending.done(records.isEmpty ? .failure(.notFound("no SRV records")) : .success(records))
        }, pending)
        rearmTimer()
    }

    /// c-ares opened, closed or changed what it waits for on a socket.
    private func socketChanged(_ fd: Int32, readable: Bool, writable: Bool) {
        var events: IOEvents = []
        if readable { events.insert(.read) }
        if writable { events.insert(.write) }
        if events.isEmpty {
            // Possibly from inside this very watcher's callback: keep it alive until the
            // callbacks are over.
            if let watcher = watchers.removeValue(forKey: fd) {
                watcher.stop()
                loop.retire(watcher)
            }
            return
        }
        let watcher = watchers[fd] ?? IOWatcher(loop: loop, fd: fd) { [unowned self] ready in
            guard let channel = self.channel else { return }
            ares_process_fd(channel, ready.contains(.read) ? fd : ARES_SOCKET_BAD, ready.contains(.write) ? fd : ARES_SOCKET_BAD)
            self.rearmTimer()
        }
        watchers[fd] = watcher
        watcher.watch(events)
    }

    /// Sets the loop timer to c-ares' next timeout, or stops it when nothing is in flight.
    private func rearmTimer() {
        guard let channel else { return }
        var next = timeval()
        guard let wait = ares_timeout(channel, nil, &next) else {
            timer.stop()
            return
        }
        timer.start(after: max(0.001, Double(wait.pointee.tv_sec) + Double(wait.pointee.tv_usec) / 1_000_000))
    }

    private static func failure(_ status: Int32) -> Failure {
        let text = String(cString: ares_strerror(status))
        switch status {
        case ARES_ENOTFOUND, ARES_ENODATA, ARES_ENONAME: return .notFound(text)
        default: return .failed(text)
        }
    }
}
