import Foundation
import Glibc

/// Debian's real dnsmasq on 127.0.0.1 (UDP and TCP on one port), answering only from a
/// hosts file this wrapper writes: several lines with one name give all their addresses,
/// IPv6 lines give AAAA. Any other name gets NXDOMAIN, and a listed name without an
/// address of the asked family gets NODATA. No upstream, no cache, TTL 1.
final class DnsmasqProcess {
    static let executable = "/usr/sbin/dnsmasq"

    let port: UInt16
    var nameserver: String { "127.0.0.1:\(port)" }

    private let pid: pid_t
    private var running = true
    private let directory: URL
    private let hostsURL: URL
    private let logURL: URL

    /// Starts dnsmasq serving `hosts` and waits (at most 10 s) until it has read them and
    /// accepts TCP connections.
    init(hosts: [(address: String, name: String)]) throws {
        guard FileManager.default.isExecutableFile(atPath: DnsmasqProcess.executable) else {
            throw HarnessError("\(DnsmasqProcess.executable) is missing (apt-get install dnsmasq-base)")
        }
        let directory = Harness.temporaryDirectory()
        let hostsURL = directory.appendingPathComponent("hosts")
        let logURL = directory.appendingPathComponent("dnsmasq.log")
        do {
            try DnsmasqProcess.write(hosts, to: hostsURL)
            (pid, port) = try DnsmasqProcess.start(hosts: hostsURL, log: logURL, directory: directory)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        self.directory = directory
        self.hostsURL = hostsURL
        self.logURL = logURL
    }

    /// Replaces the hosts and waits (at most 10 s) until dnsmasq answers from the new ones.
    func setHosts(_ hosts: [(address: String, name: String)]) throws {
        let before = DnsmasqProcess.reloads(of: hostsURL, in: logURL)
        try DnsmasqProcess.write(hosts, to: hostsURL)
        // SIGHUP makes dnsmasq clear its cache and re-read the --addn-hosts file; it logs
        // "read FILE - N names" once the new entries are in, and it answers queries in the
        // same single thread, so every query after that line sees them.
        Glibc.kill(pid, SIGHUP)
        guard Harness.waitUntil(timeout: 10, { DnsmasqProcess.reloads(of: hostsURL, in: logURL) > before }) else {
            throw HarnessError("dnsmasq did not re-read \(hostsURL.path) after SIGHUP")
        }
    }

    /// How many queries (of any type, over UDP or TCP) dnsmasq has had for `name`.
    func queries(name: String) -> Int {
        var wanted = name.lowercased()
        while wanted.hasSuffix(".") { wanted.removeLast() }
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { return 0 }
        // Lines look like "Dec  1 21:13:31 dnsmasq[21367]: query[A] web.test from 127.0.0.1".
        return text.lowercased().split(separator: "\n").filter { $0.contains("]: query[") && $0.hasSuffix(" \(wanted) from 127.0.0.1") }.count
    }

    /// Kills dnsmasq at once (SIGKILL).
    func kill() {
        guard running else { return }
        running = false
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    private static func write(_ hosts: [(address: String, name: String)], to url: URL) throws {
        let text = hosts.map { "\($0.address) \($0.name)\n" }.joined()
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".hosts.\(UUID().uuidString)")
        try Data(text.utf8).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw HarnessError("rename \(temporary.path) to \(url.path): \(reason)")
        }
    }

    /// How many times dnsmasq has logged reading `hosts` (at start and after each SIGHUP).
    private static func reloads(of hosts: URL, in log: URL) -> Int {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return 0 }
        return text.components(separatedBy: "]: read \(hosts.path) - ").count - 1
    }

    private static func start(hosts: URL, log: URL, directory: URL) throws -> (pid_t, UInt16) {
        let errorPath = directory.appendingPathComponent("dnsmasq.err").path
        var said = ""
        // Another process may take the port between choosing it and dnsmasq's bind: then
        // dnsmasq exits at once ("Address already in use"), and another port is tried.
        for _ in 1...3 {
            let port = Harness.freeDNSPort()
            try? FileManager.default.removeItem(at: log) // a failed try's lines must not count
            let pid = try Harness.spawn(executable, [
                "--keep-in-foreground",
                "--conf-file=/dev/null",        // not /etc/dnsmasq.conf
                "--pid-file=",                  // none
                "--user=root",                  // stay root: else it drops to nobody, who may not read the files
                "--bind-interfaces", "--listen-address=127.0.0.1", "--port=\(port)",
                "--no-resolv",                  // no upstream servers...
                "--local=/#/",                  // ...and every name is local: NXDOMAIN, not REFUSED, for unknown ones
                "--no-hosts", "--addn-hosts=\(hosts.path)",
                "--local-ttl=1",
                "--cache-size=0", "--no-negcache",
                "--log-queries", "--log-facility=\(log.path)",
            ], standardError: errorPath)
            var status: Int32 = 0
            var exited = false
            _ = Harness.waitUntil(timeout: 10) {
                exited = exited || waitpid(pid, &status, WNOHANG) == pid
                return exited || (reloads(of: hosts, in: log) > 0 && (try? TestClient(port: port, timeout: 1)) != nil)
            }
            if !exited && reloads(of: hosts, in: log) > 0 { return (pid, port) }
            if !exited {
                Glibc.kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
            }
            let errors = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            said = "wait status \(status); stderr: \(errors.suffix(2000))"
        }
        throw HarnessError("dnsmasq did not start: \(said)")
    }
}
