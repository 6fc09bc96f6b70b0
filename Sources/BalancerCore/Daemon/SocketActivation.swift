import Glibc

/// Listening sockets handed over by systemd (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`),
/// by the address each is bound to. A service whose listen address matches one uses it
/// instead of binding, so a restart through a `.socket` unit refuses no connection.
public struct SocketActivation {
    public struct Passed {
        public var fd: Int32
        public var name: String
    }

    public private(set) var sockets: [SocketAddress: Passed] = [:]

    /// Reads (and then unsets) the variables; they are ours only when `LISTEN_PID` is this
    /// process.
    public static func fromEnvironment() -> SocketActivation {
        var activation = SocketActivation()
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pidText = getenv("LISTEN_PID").map({ String(cString: $0) }), Int32(pidText) == getpid(),
              let countText = getenv("LISTEN_FDS").map({ String(cString: $0) }), let count = Int32(countText), count > 0 else {
            return activation
        }
        let names = getenv("LISTEN_FDNAMES").map { String(cString: $0).split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        for index in 0..<count {
            let fd = 3 + index  // SD_LISTEN_FDS_START
            guard let address = Socket.localAddress(fd) else { continue }
            Socket.adopt(fd)
            let name = Int(index) < names.count ? names[Int(index)] : "unknown"
            activation.sockets[address] = Passed(fd: fd, name: name)
        }
        return activation
    }

    /// The passed socket bound to `address`, taken out of the pool.
    public mutating func take(_ address: SocketAddress) -> Int32? {
        sockets.removeValue(forKey: address)?.fd
    }

    public var isEmpty: Bool { sockets.isEmpty }
}
