import CCurl
import Glibc

/// HTTP/1.1 requests on an event loop: one libcurl multi handle driven by the loop
/// (curl's multi-socket API: its sockets on io watchers, its timeout on one timer), so a
/// slow or silent server never blocks the loop. Used for etcd's JSON gateway: short POSTs
/// and a long-lived streaming watch.
///
/// Body bytes reach `onData` as they arrive (curl removes the chunked framing); `onDone`
/// is called once at the end with the HTTP status or the reason it failed, never for a
/// transfer that was cancelled.
final class CurlMulti {
    /// TLS files for https members.
    struct TLSFiles {
        var ca: String?
        var cert: String?
        var key: String?
    }

    /// One request in flight.
    final class Transfer {
        fileprivate let easy: UnsafeMutableRawPointer
        fileprivate var onData: ([UInt8]) -> Void
        fileprivate var onDone: (Result<Int, TransferError>) -> Void
        fileprivate var cancelled = false
        // curl keeps pointers to these until the transfer ends.
        fileprivate var body: [CChar]
        fileprivate var strings: [UnsafeMutablePointer<CChar>] = []
        fileprivate var headers: UnsafeMutablePointer<curl_slist>?

        fileprivate init(easy: UnsafeMutableRawPointer, body: String, onData: @escaping ([UInt8]) -> Void, onDone: @escaping (Result<Int, TransferError>) -> Void) {
            self.easy = easy
            self.body = Array(body.utf8CString)
            self.onData = onData
            self.onDone = onDone
        }

        deinit {
            curl_slist_free_all(headers)
            strings.forEach { free($0) }
        }
    }

    struct TransferError: Error, CustomStringConvertible {
        let description: String
    }

    private let loop: EventLoop
    private let multi: UnsafeMutableRawPointer
    private let timer: TimerWatcher
    /// Runs removals that were asked for inside curl's callbacks, where they are not allowed.
    private let sweeper: TimerWatcher
    private var watchers: [Int32: IOWatcher] = [:]
    private var transfers: [UnsafeMutableRawPointer: Transfer] = [:]

    init(loop: EventLoop) {
        self.loop = loop
        _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()
        timer = TimerWatcher(loop: loop, handler: {})
        sweeper = TimerWatcher(loop: loop, handler: {})
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = ccurl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
        _ = ccurl_multi_setopt_socket_callback(multi) { _, fd, what, context, _ in
            Unmanaged<CurlMulti>.fromOpaque(context!).takeUnretainedValue().socketChanged(fd, what: what)
            return 0
        }
        _ = ccurl_multi_setopt_timer_callback(multi) { _, milliseconds, context in
            Unmanaged<CurlMulti>.fromOpaque(context!).takeUnretainedValue().timeoutChanged(milliseconds)
            return 0
        }
        timer.handler = { [unowned self] in self.act(on: CURL_SOCKET_BAD, events: 0) }
        sweeper.handler = { [unowned self] in self.sweep() }
    }

    deinit {
        for transfer in transfers.values {
            curl_multi_remove_handle(multi, transfer.easy)
            curl_easy_cleanup(transfer.easy)
        }
        transfers.removeAll()
        curl_multi_cleanup(multi)
    }

    /// POSTs `body` (JSON) to `url`. `timeout` bounds the whole transfer (nil: none, for a
    /// stream); `connectTimeout` the connection.
    @discardableResult
    func post(url: String, body: String, headers: [String] = [], timeout: Double?, connectTimeout: Double, tls: TLSFiles?,
              onData: @escaping ([UInt8]) -> Void, onDone: @escaping (Result<Int, TransferError>) -> Void) -> Transfer? {
        guard let easy = curl_easy_init() else {
            onDone(.failure(TransferError(description: "cannot start an HTTP transfer")))
            return nil
        }
        let transfer = Transfer(easy: easy, body: body, onData: onData, onDone: onDone)
        func string(_ option: CURLoption, _ value: String) {
            let copy = strdup(value)!
            transfer.strings.append(copy)
            _ = ccurl_easy_setopt_string(easy, option, copy)
        }
        string(CURLOPT_URL, url)
        transfer.body.withUnsafeMutableBufferPointer { _ = ccurl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, $0.baseAddress) }
        _ = ccurl_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, transfer.body.count - 1)
        for header in ["Content-Type: application/json"] + headers {
            transfer.headers = curl_slist_append(transfer.headers, header)
        }
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(transfer.headers))
        _ = ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(max(1, connectTimeout * 1000)))
        if let timeout { _ = ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(max(1, timeout * 1000))) }
        // A member that went away without a FIN is noticed by TCP keepalive.
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPIDLE, 5)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPINTVL, 2)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        if let tls {
            if let ca = tls.ca { string(CURLOPT_CAINFO, ca) }
            if let cert = tls.cert { string(CURLOPT_SSLCERT, cert) }
            if let key = tls.key { string(CURLOPT_SSLKEY, key) }
        }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context)
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = ccurl_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<CurlMulti.Transfer>.fromOpaque(context!).takeUnretainedValue()
            // A short count makes curl end the transfer: the way to stop from inside.
            if transfer.cancelled { return 0 }
            let length = size * count
            if let data, length > 0 {
                transfer.onData(Array(UnsafeRawBufferPointer(start: data, count: length)))
            }
            return length
        }
        transfers[easy] = transfer
        curl_multi_add_handle(multi, easy)
        return transfer
    }

    /// Stops `transfer`; its `onDone` is not called. Safe from any callback.
    func cancel(_ transfer: Transfer) {
        guard !transfer.cancelled else { return }
        transfer.cancelled = true
        if !sweeper.isActive { sweeper.start(after: 0) }
    }

    private func sweep() {
        for (easy, transfer) in transfers where transfer.cancelled {
            transfers.removeValue(forKey: easy)
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
        }
    }

    /// curl wants `fd` watched for `what` (CURL_POLL_IN, _OUT, _INOUT) or no more (_REMOVE).
    private func socketChanged(_ fd: Int32, what: Int32) {
        var events: IOEvents = []
        if what == CURL_POLL_IN || what == CURL_POLL_INOUT { events.insert(.read) }
        if what == CURL_POLL_OUT || what == CURL_POLL_INOUT { events.insert(.write) }
        if what == CURL_POLL_REMOVE || events.isEmpty {
            if let watcher = watchers.removeValue(forKey: fd) {
                watcher.stop()
                // Possibly inside this watcher's own callback.
                loop.retire(watcher)
            }
            return
        }
        let watcher = watchers[fd] ?? IOWatcher(loop: loop, fd: fd) { [unowned self] ready in
            var mask: Int32 = 0
            if ready.contains(.read) { mask |= CURL_CSELECT_IN }
            if ready.contains(.write) { mask |= CURL_CSELECT_OUT }
            self.act(on: fd, events: mask)
        }
        watchers[fd] = watcher
        watcher.watch(events)
    }

    /// curl's next timeout: -1 none, 0 at once (on the next loop iteration: curl must not
    /// be called back from inside this callback).
    private func timeoutChanged(_ milliseconds: Int) {
        if milliseconds < 0 {
            timer.stop()
        } else {
            timer.start(after: Double(milliseconds) / 1000)
        }
    }

    private func act(on fd: Int32, events: Int32) {
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, fd, events, &running)
        finishDone()
    }

    /// Hands every finished transfer its result.
    private func finishDone() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            guard let transfer = transfers.removeValue(forKey: easy) else { continue }
            var status = 0
            _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
            if transfer.cancelled { continue }
            if code == CURLE_OK {
                transfer.onDone(.success(status))
            } else {
                transfer.onDone(.failure(TransferError(description: String(cString: curl_easy_strerror(code)))))
            }
        }
    }
}
