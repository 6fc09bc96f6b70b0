import Foundation
import Glibc

/// What `dns-server.py` serves: records per name, and per-name (or global) misbehaviour.
/// Names match case-insensitively, with or without a trailing dot.
struct DNSZone: Encodable {
    struct SRVRecord: Encodable {
        var priority: Int
        var weight: Int
        var port: Int
        var target: String
    }

    /// The records of one name. A name with no records of the asked type gets NODATA.
    struct Records: Encodable {
        var A: [String]? = nil
        var AAAA: [String]? = nil
        var SRV: [SRVRecord]? = nil
    }

    /// The TTL of every answer, in seconds.
    var ttl: Int = 1
    /// Names not listed here get NXDOMAIN.
    var records: [String: Records]
    /// Per name: "servfail", "refused", "nxdomain", "drop" (no answer at all), "malformed"
    /// (garbage bytes after the query's id) or "truncate" (TC over UDP, the answer over TCP).
    var behaviour: [String: String] = [:]
    /// When set, one of the behaviours above for every query, whatever the name.
    var all: String? = nil
}

/// `dns-server.py`: a scriptable authoritative DNS server on 127.0.0.1 (UDP and TCP on one
/// port), whose zone a test can change at any time and whose queries it can count.
final class DNSServerProcess {
    let port: UInt16
    var nameserver: String { "127.0.0.1:\(port)" }

    private let process: Process
    private let directory: URL
    private let zoneURL: URL
    private let logURL: URL

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("dns-server.py")

    /// Starts the server with `zone` and waits (at most 10 s) until it serves.
    init(zone: DNSZone) throws {
        let directory = Harness.temporaryDirectory()
        let zoneURL = directory.appendingPathComponent("zone.json")
        let logURL = directory.appendingPathComponent("queries.log")
        do {
            try DNSServerProcess.write(zone, to: zoneURL)
            (process, port) = try DNSServerProcess.start(zone: zoneURL, log: logURL, directory: directory)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        self.directory = directory
        self.zoneURL = zoneURL
        self.logURL = logURL
    }

    /// Replaces the zone; the server's next query sees it. Written beside the zone and
    /// renamed over it, so the server never reads half a file.
    func update(_ zone: DNSZone) throws {
        try DNSServerProcess.write(zone, to: zoneURL)
    }

    /// How many queries (of any type, over UDP or TCP) the server has had for `name`.
    func queries(name: String) -> Int { count(name: name, protocols: ["udp", "tcp"]) }

    /// How many of them came over TCP (a resolver retrying a truncated answer).
    func tcpQueries(name: String) -> Int { count(name: name, protocols: ["tcp"]) }

    private func count(name: String, protocols: Set<String>) -> Int {
        let wanted = DNSServerProcess.normalized(name)
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { line in
            let fields = line.split(separator: " ")
            return fields.count >= 2 && protocols.contains(String(fields[0])) && DNSServerProcess.normalized(String(fields[1])) == wanted
        }.count
    }

    /// Kills the server at once (SIGKILL): its port then refuses TCP and drops UDP.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    private static func normalized(_ name: String) -> String {
        var name = name.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        return name
    }

    private static func write(_ zone: DNSZone, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        try JSONEncoder().encode(zone).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw HarnessError("rename \(temporary.path) to \(url.path): \(reason)")
        }
    }

    /// Runs the script on a free port, trying again on another one if it does not come up
    /// (another process may take the port between choosing it and the server's bind).
    private static func start(zone: URL, log: URL, directory: URL) throws -> (Process, UInt16) {
        let errorURL = directory.appendingPathComponent("server.err")
        var said = ""
        for _ in 1...3 {
            let port = Harness.freeDNSPort()
            _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script.path, "--port", String(port), "--zone", zone.path, "--log", log.path]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle(forWritingAtPath: errorURL.path)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            said = Harness.readLine(from: output.fileHandleForReading.fileDescriptor, timeout: 10)
            if said == "ready" { return (process, port) }
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let errors = (try? String(contentsOf: errorURL, encoding: .utf8)) ?? ""
            said = "said '\(said)'; stderr: \(errors.suffix(2000))"
        }
        throw HarnessError("dns-server.py did not start: \(said)")
    }
}

extension Harness {
    /// A port on 127.0.0.1 that is free right now for both UDP and TCP, as a DNS server
    /// needs both on one port.
    /// A port free for both UDP and TCP (`freePort` checks both).
    static func freeDNSPort() -> UInt16 { freePort() }

    /// The first line `fd` gives within `timeout` seconds (less if it closes), trimmed.
    static func readLine(from fd: Int32, timeout: Double) -> String {
        var line = [UInt8]()
        let deadline = Date().addingTimeInterval(timeout)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            var byte: UInt8 = 0
            if read(fd, &byte, 1) != 1 { break }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
