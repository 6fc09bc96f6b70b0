import Foundation
import Glibc
import Synchronization

/// Where the built products are, and small helpers shared by the end-to-end tests.
enum Harness {
    /// The folder holding `balancerd` and `testbackend`: the one the test bundle was built
    /// into (or `BALANCERD_BUILD_DIR`).
    static let buildDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["BALANCERD_BUILD_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("balancerd").path) && url.path != "/" {
            url = url.deletingLastPathComponent()
        }
        return url
    }()

    static var balancerd: String { buildDirectory.appendingPathComponent("balancerd").path }

    /// The checkout this test file belongs to (for its scripts).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static var testbackend: String { buildDirectory.appendingPathComponent("testbackend").path }
    static var balancerctl: String { buildDirectory.appendingPathComponent("balancerctl").path }

    /// A fresh folder for one test's files.
    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("balancerd-e2e-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The next port `freePort` tries; each test process starts at its own offset.
    private static let nextPort = Atomic<Int>(20_000 + Int(getpid()) % 60 * 200)

    /// A port of 127.0.0.1 that neither TCP nor UDP uses right now, and that no other call in
    /// this process has handed out. Taken below the kernel's ephemeral range (32768 and up),
    /// so that the source port of some test's outgoing connection can never take it between
    /// this call and the bind of the daemon it is for; a port the kernel picks (bind to 0)
    /// would be ephemeral, and with hundreds of connections in flight, sometimes reused.
    static func freePort() -> UInt16 {
        for _ in 0..<12_000 {
            let candidate = 20_000 + (nextPort.wrappingAdd(1, ordering: .relaxed).oldValue - 20_000) % 12_000
            let port = UInt16(candidate)
            if isFree(port, type: SOCK_STREAM) && isFree(port, type: SOCK_DGRAM) { return port }
        }
        fatalError("no free port on 127.0.0.1 between 20000 and 32000")
    }

    private static func isFree(_ port: UInt16, type: __socket_type) -> Bool {
        let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// Starts a connect to 127.0.0.1:`port` without waiting for it; returns the socket.
    static func connectWithoutWaiting(port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return fd
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
    @discardableResult
    static func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
