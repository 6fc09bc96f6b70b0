/// One UDP session: a client address and port on one listening socket of one worker, and
/// the endpoint its datagrams go to through a UDP socket connected to that endpoint.
///
/// Every later datagram of the client goes to the same endpoint; every datagram the
/// endpoint sends back leaves through the listening socket, from the local address the
/// client sent to. An ICMP "port unreachable" from the endpoint (ECONNREFUSED on the
/// connected socket) counts as a failed connect and sends the next datagram elsewhere.
final class UDPSession {
    let key: UDPProxy.SessionKey
    let service: Service
    let settings: Service.Settings
    /// The listening socket replies leave through.
    let listenerFD: Int32
    let client: DatagramAddress
    /// The local address the client sent to (wildcard listeners), for the replies' source.
    let local: DatagramAddress?
    /// The client's address, hashed for source-ip (once, when the session starts).
    let clientKey: UInt64
    private(set) var endpoint: Endpoint?
    private(set) var upstream: Int32 = -1
    var watcher: IOWatcher?
    /// Endpoints that refused this session (ICMP port unreachable).
    var refused: [Endpoint] = []
    /// Loop time of the last datagram either way.
    var lastActive: Double
    var datagramsIn = 0
    var datagramsOut = 0
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    /// Loop time when its first datagram arrived.
    let started: Double
    /// Endpoints tried for it (for the connection log's `attempts`).
    var attempts = 0

    init(key: UDPProxy.SessionKey, service: Service, settings: Service.Settings, listenerFD: Int32,
         client: DatagramAddress, local: DatagramAddress?, clientKey: UInt64, now: Double) {
        self.key = key
        self.service = service
        self.settings = settings
        self.listenerFD = listenerFD
        self.client = client
        self.local = local
        self.clientKey = clientKey
        lastActive = now
        started = now
    }

    /// Takes `endpoint` (a slot already taken in it) through `socket`, connected to it.
    func attach(_ endpoint: Endpoint, socket: Int32, watcher: IOWatcher) {
        self.endpoint = endpoint
        upstream = socket
        self.watcher = watcher
    }

    /// Lets go of the endpoint and its socket; returns the endpoint it had.
    @discardableResult
    func detach() -> Endpoint? {
        watcher?.stop()
        watcher = nil
        if upstream >= 0 { DatagramSocket.close(upstream) }
        upstream = -1
        defer { endpoint = nil }
        return endpoint
    }
}
