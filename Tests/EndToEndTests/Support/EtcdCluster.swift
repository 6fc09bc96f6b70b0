import Foundation
import Glibc

/// Real etcd (Debian's etcd-server 3.4) on loopback ports: one member or a cluster of
/// several, each with its own data folder, started and stopped by the test. Keys are
/// written with Debian's etcdctl.
final class EtcdCluster {
    struct Member {
        let name: String
        let clientPort: UInt16
        let peerPort: UInt16
        let dataDirectory: String
        var process: Process?
    }

    private(set) var members: [Member]
    private let directory: URL
    /// TLS: the CA, and the client certificate and key balancerd presents (nil: plain http).
    let tls: (ca: String, cert: String, key: String)?

    /// Starts `count` members (unless `start` is false: then `startAll()` does) and waits
    /// (at most 20 s) until the cluster answers.
    init(members count: Int = 1, tls useTLS: Bool = false, start: Bool = true) throws {
        directory = Harness.temporaryDirectory()
        members = (0..<count).map { index in
            Member(name: "m\(index)", clientPort: Harness.freePort(), peerPort: Harness.freePort(),
                   dataDirectory: "", process: nil)
        }
        for index in members.indices {
            members[index] = Member(name: members[index].name, clientPort: members[index].clientPort, peerPort: members[index].peerPort,
                                    dataDirectory: directory.appendingPathComponent("data-\(index)").path, process: nil)
        }
        tls = useTLS ? try Self.makeCertificates(in: directory) : nil
        if start { try startAll() }
    }

    func startAll() throws {
        for index in members.indices { try start(member: index) }
        guard Harness.waitUntil(timeout: 20, { (try? self.etcdctl(["endpoint", "health", "--cluster"], timeout: 3)) != nil }) else {
            throw HarnessError("etcd did not become healthy")
        }
    }

    deinit {
        for index in members.indices { kill(member: index) }
        try? FileManager.default.removeItem(at: directory)
    }

    var scheme: String { tls == nil ? "http" : "https" }

    func clientURL(_ index: Int) -> String { "\(scheme)://127.0.0.1:\(members[index].clientPort)" }
    var clientURLs: [String] { members.indices.map(clientURL) }

    /// The `discovery:` lines of a balancerd configuration for this cluster.
    func discoveryConfig(prefix: String = "/balancerd", dialTimeout: String = "1s") -> [String] {
        var lines = ["discovery:", "  etcd:", "    endpoints: [\(clientURLs.map { "\"\($0)\"" }.joined(separator: ", "))]",
                     "    prefix: \(prefix)", "    dialTimeout: \(dialTimeout)"]
        if let tls { lines.append("    tls: {ca: \(tls.ca), cert: \(tls.cert), key: \(tls.key)}") }
        return lines
    }

    func start(member index: Int) throws {
        let member = members[index]
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        var arguments = [
            "--name", member.name, "--data-dir", member.dataDirectory,
            "--listen-client-urls", clientURL(index), "--advertise-client-urls", clientURL(index),
            "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", "t-\(directory.lastPathComponent)",
            "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "error",
        ]
        if let tls {
            arguments += ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca, "--client-cert-auth"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = directory.appendingPathComponent("\(member.name).log").path
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        members[index].process = process
    }

    /// SIGKILL, as a crashed host would go.
    func kill(member index: Int) {
        guard let process = members[index].process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        members[index].process = nil
    }

    /// Starts a killed member again on its data and waits (at most 20 s) until it answers.
    func restart(member index: Int) throws {
        try start(member: index)
        guard Harness.waitUntil(timeout: 20, { (try? self.etcdctl(["endpoint", "health"], endpoints: [self.clientURL(index)], timeout: 2)) != nil }) else {
            throw HarnessError("etcd member \(index) did not come back")
        }
    }

    func put(_ key: String, _ value: String, lease: String? = nil) throws {
        try etcdctl(["put", key, value] + (lease.map { ["--lease=\($0)"] } ?? []))
    }

    /// `put`, tried again for up to `timeout` seconds: after a member is killed, the others
    /// may need a moment (an election) before they commit.
    func putWhenQuorate(_ key: String, _ value: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try put(key, value)
            } catch {
                if Date() > deadline { throw error }
                usleep(200_000)
            }
        }
    }

    func delete(_ key: String) throws {
        try etcdctl(["del", key])
    }

    /// A lease of `ttl` seconds; its id (hex) for `put`.
    func grantLease(ttl: Int) throws -> String {
        let output = try etcdctl(["lease", "grant", String(ttl)])
        // "lease 694d7d1b2a2b0c0a granted with TTL(2s)"
        guard let id = output.split(separator: " ").dropFirst().first else { throw HarnessError("no lease id in '\(output)'") }
        return String(id)
    }

    /// The store's current revision.
    func revision() throws -> Int {
        let output = try etcdctl(["endpoint", "status", "-w", "json"], endpoints: [clientURLs.first { _ in true }!])
        guard let range = output.range(of: "\"revision\":"),
              let number = Int(output[range.upperBound...].prefix { $0.isNumber }) else {
            throw HarnessError("no revision in '\(output.prefix(200))'")
        }
        return number
    }

    func compact(to revision: Int) throws {
        try etcdctl(["compaction", "--physical", String(revision)])
    }

    /// Runs etcdctl (v3 API) against the members that are running, at most `timeout` s.
    @discardableResult
    func etcdctl(_ arguments: [String], endpoints: [String]? = nil, timeout: Double = 5) throws -> String {
        let running = members.indices.filter { members[$0].process != nil }.map(clientURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
        var all = ["--endpoints", (endpoints ?? running).joined(separator: ","), "--dial-timeout", "2s", "--command-timeout", "\(Int(timeout))s"]
        if let tls { all += ["--cacert", tls.ca, "--cert", tls.cert, "--key", tls.key] }
        process.arguments = all + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ETCDCTL_API"] = "3"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = Harness.readAll(from: output.fileHandleForReading.fileDescriptor, timeout: timeout + 3)
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("etcdctl \(arguments.joined(separator: " ")): \(text)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A CA and one certificate for 127.0.0.1 that serves as the members' and the client's.
    private static func makeCertificates(in directory: URL) throws -> (ca: String, cert: String, key: String) {
        let ca = directory.appendingPathComponent("ca.pem").path
        let caKey = directory.appendingPathComponent("ca-key.pem").path
        let cert = directory.appendingPathComponent("etcd.pem").path
        let key = directory.appendingPathComponent("etcd-key.pem").path
        let request = directory.appendingPathComponent("etcd.csr").path
        let extensions = directory.appendingPathComponent("ext.cnf").path
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n".write(toFile: extensions, atomically: true, encoding: .utf8)
        for command in [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=balancerd-test-ca"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions],
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = command
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw HarnessError("openssl \(command[0]) failed") }
        }
        return (ca, cert, key)
    }
}

extension Harness {
    /// Everything `fd` gives until it closes, or `timeout` seconds pass.
    static func readAll(from fd: Int32, timeout: Double) -> String {
        var bytes = [UInt8]()
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
