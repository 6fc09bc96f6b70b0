import Foundation
import Glibc

/// Follows a prefix of an etcd v3 cluster on the main loop, through its JSON gateway
/// (`/v3/kv/range`, `/v3/watch`) over libcurl: a snapshot read, then a watch from the
/// snapshot's revision + 1, tracking the revision of every event.
///
/// When the watch breaks (the member stops, loses its leader, is compacted past the
/// revision asked, or a read fails), the catalog in force stays as it is, and after a
/// backoff (0.1 s doubling, at most 5 s) the next member is read again; only the
/// difference is applied. `onChange` is called (at most once per loop iteration) when the
/// catalog changed; the daemon then rebuilds the service map, as for a reload.
public final class EtcdDiscovery {
    /// What `/stats` shows under `discovery.etcd`.
    public struct Status: Sendable {
        public var connected: Bool
        public var revision: Int
        public var member: String?
        public var lastError: String?
        public var rejected: [EtcdCatalog.Rejection]
        public var applied: Int
        public var rejectedTotal: Int
    }

    private enum Phase {
        case idle
        case reading(CurlMulti.Transfer?)
        case watching(CurlMulti.Transfer?)
        case waiting
    }

    private let loop: EventLoop
    private var config: EtcdConfig
    private let http: CurlMulti
    private let retryTimer: TimerWatcher
    private let changeTimer: TimerWatcher
    private var phase = Phase.idle
    private var member = 0
    private var backoff = 0.1
    private var watchBuffer: [UInt8] = []

    /// The keys under the prefix, validated.
    public private(set) var catalog: EtcdCatalog
    public private(set) var revision = 0
    private var connected = false
    private var lastError: String?
    /// Keys applied and rejected, counted per put/delete seen.
    private var applied = 0
    private var rejectedTotal = 0
    /// Rejections as of the last merge, for `/stats` (set by the daemon, which merges).
    public var rejected: [EtcdCatalog.Rejection] = []

    /// Called on the loop when the catalog changed.
    public var onChange: (() -> Void)?
    /// Called once, after the first complete read.
    public var onFirstRead: (() -> Void)?

    public init(loop: EventLoop, config: EtcdConfig, template: ServiceConfig) {
        self.loop = loop
        self.config = config
        http = CurlMulti(loop: loop)
        catalog = EtcdCatalog(prefix: config.prefix, template: template)
        retryTimer = TimerWatcher(loop: loop, handler: {})
        changeTimer = TimerWatcher(loop: loop, handler: {})
        retryTimer.handler = { [unowned self] in self.read() }
        changeTimer.handler = { [unowned self] in self.onChange?() }
    }

    public var status: Status {
        Status(connected: connected, revision: revision, member: connected ? config.endpoints[member] : nil,
               lastError: lastError, rejected: rejected, applied: applied, rejectedTotal: rejectedTotal)
    }

    public func start() { read() }

    public func stop() {
        cancelTransfer()
        retryTimer.stop()
        changeTimer.stop()
        phase = .idle
    }

    /// A reload: new members, prefix or TLS start over from a read (the catalog in force
    /// stays meanwhile); new defaults are applied to the services read.
    public func update(config newConfig: EtcdConfig, template: ServiceConfig) {
        catalog.reread(template: template)
        scheduleChange()
        guard newConfig != config else { return }
        let prefixChanged = newConfig.prefix != config.prefix
        config = newConfig
        if prefixChanged { catalog = EtcdCatalog(prefix: newConfig.prefix, template: template) }
        member = 0
        cancelTransfer()
        retryTimer.stop()
        read()
    }

    // MARK: Protocol

    private var baseURL: String {
        var url = config.endpoints[member % config.endpoints.count]
        if url.hasSuffix("/") { url.removeLast() }
        return url
    }

    private var tls: CurlMulti.TLSFiles? {
        config.tls.map { CurlMulti.TLSFiles(ca: $0.ca, cert: $0.cert, key: $0.key) }
    }

    /// The gateway refuses a request that cannot reach a leader only when asked to.
    private let requireLeader = ["Grpc-Metadata-hasleader: true"]

    private var rangeEnd: String {
        // The end of a prefix range: the prefix with its last byte plus one.
        var bytes = Array((config.prefix + "/").utf8)
        bytes[bytes.count - 1] += 1
        return Data(bytes).base64EncodedString()
    }

    private var keyBase64: String { Data((config.prefix + "/").utf8).base64EncodedString() }

    private func read() {
        cancelTransfer()
        var body: [UInt8] = []
        let request = "{\"key\":\"\(keyBase64)\",\"range_end\":\"\(rangeEnd)\"}"
        let url = baseURL
        let transfer = http.post(url: url + "/v3/kv/range", body: request, headers: requireLeader,
                                 timeout: max(5, config.dialTimeout * 2), connectTimeout: config.dialTimeout, tls: tls,
                                 onData: { body += $0 },
                                 onDone: { [weak self] result in self?.readDone(result, body: body, url: url) })
        phase = .reading(transfer)
    }

    private func readDone(_ result: Result<Int, CurlMulti.TransferError>, body: [UInt8], url: String) {
        switch result {
        case .failure(let error):
            return fail("\(url): \(error)")
        case .success(let status) where status != 200:
            return fail("\(url): read answered HTTP \(status): \(Self.errorText(body))")
        case .success:
            break
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let header = object["header"] as? [String: Any], let revision = EtcdWatchMessage.int(header["revision"]) else {
            return fail("\(url): read gave an answer that is not an etcd range response")
        }
        var values: [(key: String, value: String, revision: Int)] = []
        for kv in (object["kvs"] as? [[String: Any]]) ?? [] {
            guard let key = EtcdWatchMessage.text(kv["key"]) else { continue }
            values.append((key, EtcdWatchMessage.text(kv["value"]) ?? "", EtcdWatchMessage.int(kv["mod_revision"]) ?? revision))
        }
        let changes = catalog.replace(with: values)
        applied += changes.changed - changes.rejected
        rejectedTotal += changes.rejected
        self.revision = revision
        backoff = 0.1
        if lastError != nil || !connected { Log.notice("etcd: read \(values.count) key(s) under \(config.prefix) at revision \(revision) from \(url)") }
        lastError = nil
        connected = true
        scheduleChange()
        if let first = onFirstRead {
            onFirstRead = nil
            first()
        }
        watch(from: revision + 1)
    }

    private func watch(from start: Int) {
        watchBuffer.removeAll()
        let request = "{\"create_request\":{\"key\":\"\(keyBase64)\",\"range_end\":\"\(rangeEnd)\",\"start_revision\":\"\(start)\"}}"
        let url = baseURL
        let transfer = http.post(url: url + "/v3/watch", body: request, headers: requireLeader, timeout: nil,
                                 connectTimeout: config.dialTimeout, tls: tls,
                                 onData: { [weak self] bytes in self?.watchData(bytes) },
                                 onDone: { [weak self] result in self?.watchDone(result, url: url) })
        phase = .watching(transfer)
    }

    /// The watch stream: one JSON message per line; a message may span chunks.
    private func watchData(_ bytes: [UInt8]) {
        watchBuffer += bytes
        while let newline = watchBuffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(watchBuffer[..<newline])
            watchBuffer.removeSubrange(...newline)
            if !handleWatchMessage(line) { return }
        }
        // A message is small; a stream that never ends a line is not etcd's.
        if watchBuffer.count > 16 << 20 { fail("\(baseURL): watch message over 16 MiB") }
    }

    /// Returns false once the watch is over.
    private func handleWatchMessage(_ line: [UInt8]) -> Bool {
        guard !line.allSatisfy({ $0 == 32 || $0 == 13 }) else { return true }
        switch EtcdWatchMessage(line: line) {
        case .malformed:
            fail("\(baseURL): watch sent a line that is not a watch message")
            return false
        case .error(let reason):
            fail("\(baseURL): watch ended: \(reason)")
            return false
        case .cancelled(let reason, let compacted):
            // Compacted past the revision asked: read everything again, at once.
            fail("\(baseURL): watch cancelled" + (compacted.map { " (compacted to revision \($0))" } ?? "") + ": \(reason)", quick: true)
            return false
        case .update(let events, let latest):
            for event in events {
                let modRevision = event.modRevision ?? revision
                if let value = event.value {
                    if let valid = catalog.put(key: event.key, value: value, revision: modRevision) {
                        if valid { applied += 1 } else { rejectedTotal += 1 }
                    }
                } else {
                    catalog.delete(key: event.key)
                    applied += 1
                }
                revision = max(revision, modRevision)
            }
            if let latest { revision = max(revision, latest) }
            if !events.isEmpty { scheduleChange() }
            return true
        }
    }

    private func watchDone(_ result: Result<Int, CurlMulti.TransferError>, url: String) {
        // The last message of a stopping member may end without a newline.
        if !watchBuffer.isEmpty {
            let rest = watchBuffer
            watchBuffer.removeAll()
            if !handleWatchMessage(rest) { return }
        }
        switch result {
        case .failure(let error): fail("\(url): watch broke: \(error)")
        case .success(let status): fail("\(url): watch ended (HTTP \(status))")
        }
    }

    /// The store is away or refused: keep everything, try the next member after a backoff.
    private func fail(_ reason: String, quick: Bool = false) {
        cancelTransfer()
        if connected || lastError == nil {
            Log.warning("etcd: \(reason); the last known map stays in force, retrying")
        } else {
            Log.debug("etcd: \(reason)")
        }
        connected = false
        lastError = reason
        member = (member + 1) % max(1, config.endpoints.count)
        let wait = quick ? 0 : backoff
        backoff = min(5, backoff * 2)
        phase = .waiting
        retryTimer.start(after: wait)
    }

    private func cancelTransfer() {
        switch phase {
        case .reading(let transfer?), .watching(let transfer?): http.cancel(transfer)
        default: break
        }
        phase = .idle
    }

    private func scheduleChange() {
        if !changeTimer.isActive { changeTimer.start(after: 0) }
    }

    private static func errorText(_ body: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] {
            return EtcdWatchMessage.errorText(object["error"] ?? object)
        }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }
}
