/// The messages of the takeover protocol, and their encoding: pure values, no descriptors
/// (those travel beside a message, see `DescriptorChannel`, in the order its entries list
/// them).
///
/// The exchange, with N the new process and O the running one:
///
///     N → O  hello(version, pid)         O answers refused(reason) on a version mismatch
///     O → N  welcome(version, workers)
///     O → N  listeners([…])              O stops accepting; the sockets keep queueing
///     O → N  connections([…]) …          in batches; O stops reading each one first
///     O → N  state(…)                    health, counters, runtime overrides
///     N → O  ready                       (or refused(reason): N cannot serve them)
///     O → N  commit
///     N → O  committed                   from here N owns everything and serves
///     O → N  released                    O has told systemd MAINPID=N and exits 0
///
/// Until `committed`, O owns every descriptor: N holds duplicates and serves nothing; if N
/// goes away, refuses, or the time runs out, O resumes what it parked.
public enum TakeoverMessage: Sendable, Equatable {
    /// Bumped whenever an encoding changes: a daemon refuses a version it does not speak.
    public static let version: UInt32 = 1

    case hello(version: UInt32, pid: Int32)
    case welcome(version: UInt32, workers: Int)
    /// Either side stops the takeover, saying why.
    case refused(reason: String)
    case listeners([Listener])
    case connections([Connection])
    case state(State)
    case ready
    case commit
    case committed
    case released

    /// A listening socket (one descriptor).
    public struct Listener: Sendable, Equatable {
        public enum Kind: UInt8, Sendable { case tcp = 0, udp = 1, admin = 2 }
        public var kind: Kind
        /// The worker loop that listens on it (its SO_REUSEPORT share); 0 for the admin port.
        public var worker: Int

        public init(kind: Kind, worker: Int) {
            self.kind = kind
            self.worker = worker
        }
    }

    /// An open client connection.
    public enum Connection: Sendable, Equatable {
        /// Relaying: two descriptors, the client's then the endpoint's.
        case established(Established)
        /// Not connected to an endpoint yet (connecting, queued, or its ClientHello being
        /// read): one descriptor, the client's; the new process starts it again.
        case pending(Pending)

        /// How many descriptors travel with it.
        public var descriptorCount: Int {
            if case .established = self { return 2 }
            return 1
        }
    }

    public struct Established: Sendable, Equatable {
        public var service: String
        /// The endpoint's address as `/stats` shows it.
        public var endpoint: String
        public var worker: Int
        public var fromDownstream: RelayDirection
        public var fromUpstream: RelayDirection
        /// Seconds since a byte last moved (what is left of `idleTimeout` follows from it).
        public var quietSeconds: Double
        /// Unix seconds when the client was accepted, and the figures of its log line so far.
        public var startedAt: Double
        public var attempts: Int
        public var connectMs: Int
        public var bytesIn: UInt64
        public var bytesOut: UInt64

        public init(service: String, endpoint: String, worker: Int, fromDownstream: RelayDirection, fromUpstream: RelayDirection,
                    quietSeconds: Double, startedAt: Double, attempts: Int, connectMs: Int, bytesIn: UInt64, bytesOut: UInt64) {
            self.service = service
            self.endpoint = endpoint
            self.worker = worker
            self.fromDownstream = fromDownstream
            self.fromUpstream = fromUpstream
            self.quietSeconds = quietSeconds
            self.startedAt = startedAt
            self.attempts = attempts
            self.connectMs = connectMs
            self.bytesIn = bytesIn
            self.bytesOut = bytesOut
        }
    }

    public struct Pending: Sendable, Equatable {
        /// nil: a client of an address shared by server name whose ClientHello is being read.
        public var service: String?
        /// The listen address the client connected to, as the file writes it.
        public var listen: String
        public var worker: Int
        /// Bytes already read from the client (its ClientHello, or part of it).
        public var bytes: [UInt8]

        public init(service: String?, listen: String, worker: Int, bytes: [UInt8]) {
            self.service = service
            self.listen = listen
            self.worker = worker
            self.bytes = bytes
        }
    }

    /// What `/stats` shows beyond the connections, so that nothing flaps and counters go on.
    public struct State: Sendable, Equatable {
        public var generation: Int
        /// Unix seconds the first daemon of the line started (uptime continues).
        public var startTime: Double
        public var reloadSuccesses: Int
        public var reloadFailures: Int
        /// `RuntimeOverrides.encoded()`.
        public var overrides: [UInt8]
        public var services: [ServiceFigures]

        public init(generation: Int, startTime: Double, reloadSuccesses: Int, reloadFailures: Int, overrides: [UInt8], services: [ServiceFigures]) {
            self.generation = generation
            self.startTime = startTime
            self.reloadSuccesses = reloadSuccesses
            self.reloadFailures = reloadFailures
            self.overrides = overrides
            self.services = services
        }
    }

    public struct ServiceFigures: Sendable, Equatable {
        public var name: String
        /// total, failed, queueTimeouts, bytesIn, bytesOut, datagramsIn, datagramsOut, droppedDatagrams.
        public var counters: [UInt64]
        public var endpoints: [EndpointFigures]

        public init(name: String, counters: [UInt64], endpoints: [EndpointFigures]) {
            self.name = name
            self.counters = counters
            self.endpoints = endpoints
        }
    }

    public struct EndpointFigures: Sendable, Equatable {
        public var address: String
        public var isUp: Bool
        public var consecutiveFailures: Int
        public var consecutivePasses: Int
        /// totalConnections, failedConnects, checksPassed, checksFailed, bytesIn, bytesOut.
        public var counters: [UInt64]
        public var lastCheck: HealthCheckResult?

        public init(address: String, isUp: Bool, consecutiveFailures: Int, consecutivePasses: Int, counters: [UInt64], lastCheck: HealthCheckResult?) {
            self.address = address
            self.isUp = isUp
            self.consecutiveFailures = consecutiveFailures
            self.consecutivePasses = consecutivePasses
            self.counters = counters
            self.lastCheck = lastCheck
        }
    }

    public struct DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Descriptors that travel with the message.
    public var descriptorCount: Int {
        switch self {
        case .listeners(let entries): entries.count
        case .connections(let entries): entries.reduce(0) { $0 + $1.descriptorCount }
        default: 0
        }
    }

    // MARK: Encoding

    public func encoded() -> [UInt8] {
        var out = Writer()
        switch self {
        case .hello(let version, let pid):
            out.byte(1); out.u64(UInt64(version)); out.u64(UInt64(UInt32(bitPattern: pid)))
        case .welcome(let version, let workers):
            out.byte(2); out.u64(UInt64(version)); out.u64(UInt64(workers))
        case .refused(let reason):
            out.byte(3); out.string(reason)
        case .listeners(let entries):
            out.byte(4); out.u64(UInt64(entries.count))
            for entry in entries { out.byte(entry.kind.rawValue); out.u64(UInt64(entry.worker)) }
        case .connections(let entries):
            out.byte(5); out.u64(UInt64(entries.count))
            for entry in entries { out.connection(entry) }
        case .state(let state):
            out.byte(6); out.state(state)
        case .ready: out.byte(7)
        case .commit: out.byte(8)
        case .committed: out.byte(9)
        case .released: out.byte(10)
        }
        return out.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> TakeoverMessage {
        var input = Reader(bytes: bytes)
        let message: TakeoverMessage
        switch try input.byte() {
        case 1: message = .hello(version: UInt32(truncatingIfNeeded: try input.u64()), pid: Int32(bitPattern: UInt32(truncatingIfNeeded: try input.u64())))
        case 2: message = .welcome(version: UInt32(truncatingIfNeeded: try input.u64()), workers: try input.int())
        case 3: message = .refused(reason: try input.string())
        case 4:
            var entries: [Listener] = []
            for _ in 0..<(try input.count()) {
                guard let kind = Listener.Kind(rawValue: try input.byte()) else { throw DecodeError(description: "unknown listener kind") }
                entries.append(Listener(kind: kind, worker: try input.int()))
            }
            message = .listeners(entries)
        case 5:
            var entries: [Connection] = []
            for _ in 0..<(try input.count()) { entries.append(try input.connection()) }
            message = .connections(entries)
        case 6: message = .state(try input.state())
        case 7: message = .ready
        case 8: message = .commit
        case 9: message = .committed
        case 10: message = .released
        case let tag: throw DecodeError(description: "unknown message type \(tag)")
        }
        guard input.atEnd else { throw DecodeError(description: "\(bytes.count - input.offset) bytes after the message") }
        return message
    }

    /// Appends fields: integers as 8 bytes big-endian, doubles by their bits, strings and
    /// byte runs after their length.
    private struct Writer {
        var bytes: [UInt8] = []

        mutating func byte(_ value: UInt8) { bytes.append(value) }
        mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }
        mutating func u64(_ value: UInt64) {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        mutating func double(_ value: Double) { u64(value.bitPattern) }
        mutating func run(_ value: [UInt8]) { u64(UInt64(value.count)); bytes += value }
        mutating func string(_ value: String) { run(Array(value.utf8)) }

        mutating func direction(_ value: RelayDirection) {
            run(value.pending); byte(value.flow.rawValue); bool(value.splicing)
        }

        mutating func connection(_ entry: Connection) {
            switch entry {
            case .established(let c):
                byte(0); string(c.service); string(c.endpoint); u64(UInt64(c.worker))
                direction(c.fromDownstream); direction(c.fromUpstream)
                double(c.quietSeconds); double(c.startedAt); u64(UInt64(c.attempts)); u64(UInt64(c.connectMs))
                u64(c.bytesIn); u64(c.bytesOut)
            case .pending(let p):
                byte(1); bool(p.service != nil); string(p.service ?? ""); string(p.listen); u64(UInt64(p.worker)); run(p.bytes)
            }
        }

        mutating func state(_ s: State) {
            u64(UInt64(s.generation)); double(s.startTime); u64(UInt64(s.reloadSuccesses)); u64(UInt64(s.reloadFailures))
            run(s.overrides)
            u64(UInt64(s.services.count))
            for service in s.services {
                string(service.name); u64(UInt64(service.counters.count)); service.counters.forEach { u64($0) }
                u64(UInt64(service.endpoints.count))
                for e in service.endpoints {
                    string(e.address); bool(e.isUp); u64(UInt64(e.consecutiveFailures)); u64(UInt64(e.consecutivePasses))
                    u64(UInt64(e.counters.count)); e.counters.forEach { u64($0) }
                    bool(e.lastCheck != nil)
                    if let check = e.lastCheck { bool(check.ok); string(check.reason); double(check.duration); double(check.at) }
                }
            }
        }
    }

    /// Reads what `Writer` wrote; every read checks the bytes are there.
    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }

        mutating func byte() throws(DecodeError) -> UInt8 {
            guard offset < bytes.count else { throw DecodeError(description: "truncated message") }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func bool() throws(DecodeError) -> Bool {
            switch try byte() {
            case 0: return false
            case 1: return true
            default: throw DecodeError(description: "bad boolean")
            }
        }
        mutating func u64() throws(DecodeError) -> UInt64 {
            guard bytes.count - offset >= 8 else { throw DecodeError(description: "truncated message") }
            var value: UInt64 = 0
            for index in offset..<offset + 8 { value = value << 8 | UInt64(bytes[index]) }
            offset += 8
            return value
        }
        mutating func int() throws(DecodeError) -> Int {
            let value = try u64()
            guard value <= UInt64(Int.max) else { throw DecodeError(description: "number out of range") }
            return Int(value)
        }
        /// A count of entries or bytes that must fit in what is left.
        mutating func count() throws(DecodeError) -> Int {
            let value = try int()
            guard value <= bytes.count - offset else { throw DecodeError(description: "length \(value) past the end") }
            return value
        }
        mutating func double() throws(DecodeError) -> Double { Double(bitPattern: try u64()) }
        mutating func run() throws(DecodeError) -> [UInt8] {
            let length = try count()
            defer { offset += length }
            return Array(bytes[offset..<offset + length])
        }
        mutating func string() throws(DecodeError) -> String { String(decoding: try run(), as: UTF8.self) }

        mutating func direction() throws(DecodeError) -> RelayDirection {
            let pending = try run()
            guard let flow = RelayDirection.Flow(rawValue: try byte()) else { throw DecodeError(description: "bad flow") }
            return RelayDirection(pending: pending, flow: flow, splicing: try bool())
        }

        mutating func connection() throws(DecodeError) -> Connection {
            switch try byte() {
            case 0:
                return .established(Established(
                    service: try string(), endpoint: try string(), worker: try int(), fromDownstream: try direction(),
                    fromUpstream: try direction(), quietSeconds: try double(), startedAt: try double(), attempts: try int(),
                    connectMs: try int(), bytesIn: try u64(), bytesOut: try u64()))
            case 1:
                let named = try bool()
                let name = try string()
                return .pending(Pending(service: named ? name : nil, listen: try string(), worker: try int(), bytes: try run()))
            default:
                throw DecodeError(description: "unknown connection kind")
            }
        }

        mutating func readCounters() throws(DecodeError) -> [UInt64] {
            var values: [UInt64] = []
            for _ in 0..<(try count()) { values.append(try u64()) }
            return values
        }

        mutating func state() throws(DecodeError) -> State {
            let generation = try int(), startTime = try double(), successes = try int(), failures = try int()
            let overrides = try run()
            var services: [ServiceFigures] = []
            for _ in 0..<(try count()) {
                let name = try string()
                let counters = try readCounters()
                var endpoints: [EndpointFigures] = []
                for _ in 0..<(try count()) {
                    let address = try string(), isUp = try bool(), failures = try int(), passes = try int()
                    let counters = try readCounters()
                    var check: HealthCheckResult?
                    if try bool() {
                        check = HealthCheckResult(ok: try bool(), reason: try string(), duration: try double(), at: try double())
                    }
                    endpoints.append(EndpointFigures(address: address, isUp: isUp, consecutiveFailures: failures,
                                                     consecutivePasses: passes, counters: counters, lastCheck: check))
                }
                services.append(ServiceFigures(name: name, counters: counters, endpoints: endpoints))
            }
            return State(generation: generation, startTime: startTime, reloadSuccesses: successes, reloadFailures: failures,
                         overrides: overrides, services: services)
        }
    }
}
