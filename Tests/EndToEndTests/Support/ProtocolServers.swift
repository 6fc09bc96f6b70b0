import Foundation
import Glibc

/// A long-running server started with `Harness.spawn` (clean signals), stopped and reaped by
/// the test, with bounded waits.
final class SpawnedServer {
    let pid: pid_t
    private var reaped = false

    init(_ path: String, _ arguments: [String], log: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(path) is missing (scripts/test.sh installs it)")
        }
        pid = try Harness.spawn(path, arguments, standardError: log)
    }

    /// Sends `signal`, waits at most `timeout` seconds for the exit, then kills.
    func stop(_ signal: Int32 = SIGTERM, timeout: Double = 10) {
        guard !reaped else { return }
        kill(pid, signal)
        if !Harness.waitUntil(timeout: timeout, { hasExited }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            reaped = true
        }
    }

    var hasExited: Bool {
        if reaped { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { reaped = true }
        return reaped
    }

    deinit { stop() }
}

extension Harness {
    /// Waits at most `timeout` seconds until 127.0.0.1:`port` accepts a connection.
    static func waitForListener(port: UInt16, timeout: Double = 10) -> Bool {
        waitUntil(timeout: timeout) { (try? TestClient(port: port, timeout: 1)) != nil }
    }

    /// Runs `command` with /bin/sh for at most `timeout` seconds and returns its output
    /// (stdout and stderr); throws with it when the command fails. Spawned, not run with
    /// Foundation's `Process`, which takes a child for running for as long as anything it
    /// started holds an inherited descriptor (`pg_ctl start` leaves the server holding one).
    @discardableResult
    static func shell(_ command: String, timeout: Double = 60) throws -> String {
        let output = temporaryDirectory().appendingPathComponent("output")
        defer { try? FileManager.default.removeItem(at: output.deletingLastPathComponent()) }
        let pid = try spawn("/bin/sh", ["-c", "(\(command)) > '\(output.path)' 2>&1"])
        var status: Int32 = 0
        let finished = waitUntil(timeout: timeout) { waitpid(pid, &status, WNOHANG) == pid }
        if !finished {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard finished, status == 0 else { throw HarnessError("`\(command)` failed (\(finished ? "status \(status)" : "timed out")): \(text)") }
        return text
    }
}

/// Debian's nginx on 127.0.0.1, from a configuration written to a temporary folder: `/ready`
/// answers 200 with body `ready ok`, or 503 while `markDown()` is in force. With `tls`, a
/// second port serves TLS for `shop.example.com` (a self-signed certificate made with
/// openssl) and rejects the handshake for any other name.
final class NginxServer {
    let port: UInt16
    let tlsPort: UInt16
    let directory: URL
    private let server: SpawnedServer
    private var downFile: String { directory.appendingPathComponent("down").path }

    init(tls: Bool = false) throws {
        directory = Harness.temporaryDirectory()
        port = Harness.freePort()
        tlsPort = tls ? Harness.freePort() : 0
        let dir = directory.path
        var tlsServers = ""
        if tls {
            try Harness.shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=shop.example.com "
                + "-keyout '\(dir)/key.pem' -out '\(dir)/cert.pem'")
            tlsServers = """
              server {
                listen 127.0.0.1:\(tlsPort) ssl default_server;
                ssl_reject_handshake on;
              }
              server {
                listen 127.0.0.1:\(tlsPort) ssl;
                server_name shop.example.com;
                ssl_certificate \(dir)/cert.pem;
                ssl_certificate_key \(dir)/key.pem;
                location / { return 200 "tls ok\\n"; }
              }
            """
        }
        let config = """
        user root;
        worker_processes 1;
        pid \(dir)/nginx.pid;
        error_log \(dir)/error.log info;
        events { worker_connections 64; }
        http {
          access_log off;
          client_body_temp_path \(dir)/body;
          proxy_temp_path \(dir)/proxy;
          fastcgi_temp_path \(dir)/fastcgi;
          uwsgi_temp_path \(dir)/uwsgi;
          scgi_temp_path \(dir)/scgi;
          server {
            listen 127.0.0.1:\(port);
            location = /ready {
              if (-f \(dir)/down) { return 503 "starting\\n"; }
              return 200 "ready ok\\n";
            }
          }
        \(tlsServers)
        }
        """
        let file = directory.appendingPathComponent("nginx.conf")
        try config.write(to: file, atomically: true, encoding: .utf8)
        server = try SpawnedServer("/usr/sbin/nginx", ["-p", dir, "-c", file.path, "-g", "daemon off;"], log: "\(dir)/stderr.log")
        guard Harness.waitForListener(port: port), !tls || Harness.waitForListener(port: tlsPort) else {
            throw HarnessError("nginx did not start: \((try? String(contentsOfFile: "\(dir)/error.log", encoding: .utf8)) ?? "")")
        }
    }

    var address: String { "127.0.0.1:\(port)" }
    var tlsAddress: String { "127.0.0.1:\(tlsPort)" }

    /// From now on `/ready` answers 503.
    func markDown() { FileManager.default.createFile(atPath: downFile, contents: nil) }
    func markUp() { try? FileManager.default.removeItem(atPath: downFile) }

    deinit {
        // nginx's master stops its workers on SIGTERM (a SIGKILL would leave them behind).
        server.stop(SIGTERM)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Debian's redis-server on 127.0.0.1, with no persistence. A replica (`replicaOf`) loads
/// what it gets from its primary slowly (`loadDelayMicroseconds` per key, events served
/// every KiB), so that it answers `-LOADING` for a while, as a real replica does while it
/// loads a large data set.
final class RedisServer {
    let port: UInt16
    private let directory: URL
    private let server: SpawnedServer

    init(replicaOf primary: UInt16? = nil, loadDelayMicroseconds: Int = 0) throws {
        directory = Harness.temporaryDirectory()
        port = Harness.freePort()
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory.path]
        if let primary { arguments += ["--replicaof", "127.0.0.1", String(primary)] }
        if loadDelayMicroseconds > 0 {
            arguments += ["--key-load-delay", String(loadDelayMicroseconds), "--loading-process-events-interval-bytes", "1024"]
        }
        server = try SpawnedServer("/usr/bin/redis-server", arguments, log: directory.appendingPathComponent("redis.log").path)
        guard Harness.waitForListener(port: port) else { throw HarnessError("redis-server did not start on \(port)") }
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Sends one command (RESP) and returns the first line of the answer.
    func command(_ words: [String]) throws -> String {
        let client = try TestClient(port: port)
        try client.send("*\(words.count)\r\n" + words.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined())
        return try client.readLine().trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stores `count` keys of `size` bytes each.
    func fill(keys count: Int, size: Int) throws {
        let client = try TestClient(port: port)
        let value = String(repeating: "x", count: size)
        try client.send((0..<count).map { "*3\r\n$3\r\nSET\r\n$\("k\($0)".utf8.count)\r\nk\($0)\r\n$\(size)\r\n\(value)\r\n" }.joined())
        try client.send("*1\r\n$4\r\nPING\r\n")
        var answers = 0
        while answers <= count {
            let line = try client.readLine().trimmingCharacters(in: .whitespacesAndNewlines)
            guard line == "+OK" || line == "+PONG" else { throw HarnessError("redis answered '\(line)' to SET") }
            answers += 1
        }
    }

    func kill() { server.stop(SIGKILL) }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A PostgreSQL 15 cluster from Debian's packages on 127.0.0.1, run as the `postgres` user
/// (initdb refuses root) in a temporary folder: a primary, or a standby streaming from one
/// (`pg_basebackup -R`) with hot standby off, so that it refuses connections until promoted.
final class PostgresCluster {
    static let bin = "/usr/lib/postgresql/15/bin"
    let port: UInt16
    let directory: URL
    private var data: String { directory.appendingPathComponent("data").path }
    private var running = false

    init(standbyOf primary: PostgresCluster? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: "\(Self.bin)/initdb") else {
            throw HarnessError("\(Self.bin)/initdb is missing (scripts/test.sh installs postgresql)")
        }
        directory = Harness.temporaryDirectory()
        port = Harness.freePort()
        let dir = directory.path
        try Harness.shell("chown postgres: '\(dir)'")
        var settings = ["listen_addresses = '127.0.0.1'", "port = \(port)", "unix_socket_directories = '\(dir)'", "fsync = off",
                        // A session whose client was killed ends at once, even inside pg_sleep.
                        "client_connection_check_interval = 100ms"]
        if let primary {
            try asPostgres("\(Self.bin)/pg_basebackup -h 127.0.0.1 -p \(primary.port) -U postgres -D '\(data)' -R -X stream")
            settings.append("hot_standby = off")
        } else {
            try asPostgres("\(Self.bin)/initdb -D '\(data)' -A trust -U postgres --no-sync > '\(dir)/initdb.log'")
        }
        // Appending keeps the file's owner.
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/postgresql.conf"))
        try file.seekToEnd()
        try file.write(contentsOf: Data(("\n" + settings.joined(separator: "\n") + "\n").utf8))
        try file.close()
        try start()
        if primary == nil {
            // The port opens while the server still answers "starting up": a standby's
            // pg_basebackup, or a test's first query, waits until it accepts connections.
            let ready = Harness.waitUntil(timeout: 30) { (try? Harness.shell("\(Self.bin)/pg_isready -q -h 127.0.0.1 -p \(self.port)")) != nil }
            guard ready else { throw HarnessError("postgres did not accept connections: \(serverLog)") }
        }
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Starts the server; with hot standby off, `pg_ctl` cannot tell when a standby is
    /// ready, so it waits only for the port.
    func start() throws {
        try asPostgres("\(Self.bin)/pg_ctl -D '\(data)' -l '\(directory.path)/server.log' -W start")
        running = true
        guard Harness.waitForListener(port: port, timeout: 30) else { throw HarnessError("postgres did not start: \(serverLog)") }
    }

    func stop(mode: String, wait: Bool = true) throws {
        try asPostgres("\(Self.bin)/pg_ctl -D '\(data)' -m \(mode) \(wait ? "-w -t 30" : "-W") stop")
    }

    func promote() throws {
        try asPostgres("\(Self.bin)/pg_ctl -D '\(data)' -W promote")
    }

    /// Starts `psql` running `sql` as the database user `postgres` over TCP (to this server,
    /// or to `port`); the returned process is the open session.
    func session(_ sql: String, port: UInt16? = nil) throws -> SpawnedServer {
        try SpawnedServer("\(Self.bin)/psql", ["-h", "127.0.0.1", "-p", String(port ?? self.port), "-U", "postgres", "-X", "-q", "-c", sql],
                          log: directory.appendingPathComponent("psql-\(UUID().uuidString).log").path)
    }

    /// Runs `sql` with psql (to this server, or to `port`) and returns the unaligned answer.
    func query(_ sql: String, port: UInt16? = nil) throws -> String {
        let output = try Harness.shell("\(Self.bin)/psql -h 127.0.0.1 -p \(port ?? self.port) -U postgres -X -Atc \"\(sql)\"")
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Sessions running pg_sleep (held open by `session`).
    func activeSessions() -> Int {
        Int((try? query("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")) ?? "") ?? 0
    }

    var serverLog: String { (try? String(contentsOfFile: "\(directory.path)/server.log", encoding: .utf8)) ?? "" }

    @discardableResult
    private func asPostgres(_ command: String) throws -> String {
        try Harness.shell("/usr/sbin/runuser -u postgres -- /bin/sh -c \"\(command.replacingOccurrences(of: "\"", with: "\\\""))\"")
    }

    deinit {
        if running { try? stop(mode: "immediate") }
        try? FileManager.default.removeItem(at: directory)
    }
}
