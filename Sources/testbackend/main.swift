// A small TCP server that plays an endpoint in the demo and the end-to-end tests.
//
//   testbackend --name NAME [--host 127.0.0.1] [--port 0] [--mode echo|silent|close|reset]
//
// It prints "listening PORT" on stdout once it accepts connections. In the default echo
// mode each connection gets "NAME\n", then every byte it sends echoed back, and once the
// client half-closes, "eof N\n" (N bytes received) before the server closes. Other modes:
// silent accepts and never answers; close closes at once; reset closes with an RST;
// noaccept listens with a backlog of 0 and never accepts (once the backlog is full, a
// connect to it hangs, as to a host that has gone away); proxy reads a PROXY protocol
// header (v1 or v2) first and greets with "NAME SOURCE\n" (SOURCE is the client address
// it carried, or LOCAL / UNKNOWN), then echoes as usual; flood greets, then writes as fast
// as the connection takes and never reads; noread accepts and neither reads nor writes;
// resetafter greets, reads 1000 bytes, then resets the connection; hex:BYTES sends those
// bytes (hex digits, such as hex:2b4f4b0d0a) as its banner, then reads until the client
// closes; counting is echo with the accept's number after the name ("NAME N\n", N from 1), so
// that a test can tell how many connections the backend ever accepted; slow-eof is echo that
// waits 1.5 s after the client's FIN before its "eof N" line. UDP modes (on a UDP socket; --host may be IPv6): udp-echo sends every datagram
// back unchanged; udp-name answers every datagram with "NAME".
import Foundation
import Glibc

struct Options {
    var name = "backend"
    var host = "127.0.0.1"
    var port: UInt16 = 0
    var mode = "echo"
}

func parseOptions() -> Options {
    var options = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let arg = args.next() {
        guard let value = args.next() else { fatal("\(arg) needs a value") }
        switch arg {
        case "--name": options.name = value
        case "--host": options.host = value
        case "--port": options.port = UInt16(value) ?? 0
        case "--mode": options.mode = value
        default: fatal("unknown option \(arg)")
        }
    }
    return options
}

func fatal(_ text: String) -> Never {
    FileHandle.standardError.write(Data("testbackend: \(text)\n".utf8))
    exit(2)
}

func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Bool {
    var offset = 0
    while offset < count {
        let n = write(fd, bytes + offset, count - offset)
        if n < 0 { if errno == EINTR { continue }; return false }
        offset += n
    }
    return true
}

func writeText(_ fd: Int32, _ text: String) -> Bool {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { writeAll(fd, $0.baseAddress!, $0.count) }
}

func serve(_ fd: Int32, _ options: Options, ordinal: Int) {
    defer { close(fd) }
    switch options.mode {
    case "close":
        return
    case "reset":
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        return
    case "silent":
        var sink = [UInt8](repeating: 0, count: 4096)
        while read(fd, &sink, sink.count) > 0 {}
        return
    case "noread":
        // Hold the connection until the peer goes away, reading nothing.
        let peerClosed: Int16 = 0x2000  // POLLRDHUP, which Glibc's module hides without _GNU_SOURCE
        var poller = pollfd(fd: fd, events: peerClosed, revents: 0)
        while poll(&poller, 1, 1000) == 0 || poller.revents & peerClosed == 0 {}
        return
    case "flood":
        guard writeText(fd, "\(options.name)\n") else { return }
        let block = [UInt8](repeating: 0x46, count: 65536)
        while block.withUnsafeBytes({ writeAll(fd, $0.baseAddress!, $0.count) }) {}
        return
    case "resetafter":
        guard writeText(fd, "\(options.name)\n"), readExactly(fd, 1000) != nil else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        return
    case let mode where mode.hasPrefix("hex:"):
        let digits = Array(mode.dropFirst(4))
        let banner = stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) }
        guard banner.withUnsafeBytes({ writeAll(fd, $0.baseAddress!, $0.count) }) else { return }
        var sink = [UInt8](repeating: 0, count: 4096)
        while read(fd, &sink, sink.count) > 0 {}
        return
    default:
        break
    }
    var greeting = options.name
    if options.mode == "proxy" {
        guard let source = readProxyHeader(fd) else { return }
        greeting += " " + source
    }
    if options.mode == "counting" { greeting += " \(ordinal)" }
    guard writeText(fd, "\(greeting)\n") else { return }
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    var total = 0
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return }
        if n == 0 { break }
        total += n
        guard buffer.withUnsafeBytes({ writeAll(fd, $0.baseAddress!, n) }) else { return }
    }
    if options.mode == "slow-eof" { usleep(1_500_000) }
    _ = writeText(fd, "eof \(total)\n")
    shutdown(fd, Int32(SHUT_WR))
}

/// Reads exactly `count` bytes.
func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
        if n <= 0 { return nil }
        got += n
    }
    return bytes
}

/// The client address a PROXY header carries ("ip:port", "[ip6]:port", LOCAL or UNKNOWN).
func readProxyHeader(_ fd: Int32) -> String? {
    guard let start = readExactly(fd, 12) else { return nil }
    let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    if start == signature {
        guard let fixed = readExactly(fd, 4) else { return nil }
        let length = Int(fixed[2]) << 8 | Int(fixed[3])
        guard let body = readExactly(fd, length) else { return nil }
        if fixed[0] == 0x20 { return "LOCAL" }
        func port(_ at: Int) -> Int { Int(body[at]) << 8 | Int(body[at + 1]) }
        if fixed[1] == 0x11 {
            return body[0..<4].map(String.init).joined(separator: ".") + ":\(port(8))"
        }
        if fixed[1] == 0x21 {
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: body[0..<16]) }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            return "[" + text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } + "]:\(port(32))"
        }
        return "UNKNOWN"
    }
    // v1: text up to CRLF, at most 107 bytes.
    var line = start
    while !(line.count >= 2 && line[line.count - 2] == 0x0D && line[line.count - 1] == 0x0A) && line.count < 108 {
        guard let byte = readExactly(fd, 1) else { return nil }
        line += byte
    }
    let words = String(decoding: line.dropLast(2), as: UTF8.self).split(separator: " ")
    guard words.first == "PROXY" else { return nil }
    if words.count == 6 {
        return words[1] == "TCP6" ? "[\(words[2])]:\(words[4])" : "\(words[2]):\(words[4])"
    }
    return "UNKNOWN"
}

signal(SIGPIPE, SIG_IGN)
let options = parseOptions()
// A backend belongs to the test or demo that started it: when that process goes away
// (even by a crash), so does the backend, and no stray server outlives a run.
let parent = getppid()
Thread.detachNewThread {
    while getppid() == parent { sleep(1) }
    exit(0)
}
/// A UDP endpoint: echoes each datagram, or answers it with the backend's name.
func serveDatagrams(_ options: Options) -> Never {
    var storage = sockaddr_storage()
    var length: socklen_t
    let family: Int32
    if options.host.contains(":") {
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = options.port.bigEndian
        guard inet_pton(AF_INET6, options.host, &sin6.sin6_addr) == 1 else { fatal("bad host \(options.host)") }
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
        length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        family = AF_INET6
    } else {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = options.port.bigEndian
        guard inet_pton(AF_INET, options.host, &sin.sin_addr) == 1 else { fatal("bad host \(options.host)") }
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
        length = socklen_t(MemoryLayout<sockaddr_in>.size)
        family = AF_INET
    }
    let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
    var size: Int32 = 4 << 20
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else { fatal("bind udp \(options.host):\(options.port): \(String(cString: strerror(errno)))") }
    _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    let port = withUnsafeBytes(of: &storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
    _ = writeText(1, "listening \(port)\n")
    var buffer = [UInt8](repeating: 0, count: 65_536)
    let name = Array(options.name.utf8)
    while true {
        var peer = sockaddr_storage()
        var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &peerLength) }
        }
        if count < 0 { continue }
        _ = withUnsafePointer(to: &peer) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) { to in
                options.mode == "udp-name" ? sendto(fd, name, name.count, 0, to, peerLength) : sendto(fd, buffer, count, 0, to, peerLength)
            }
        }
    }
}

if options.mode.hasPrefix("udp-") { serveDatagrams(options) }
let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
var one: Int32 = 1
setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
var address = sockaddr_in()
address.sin_family = sa_family_t(AF_INET)
address.sin_port = options.port.bigEndian
guard inet_pton(AF_INET, options.host, &address.sin_addr) == 1 else { fatal("bad host \(options.host)") }
let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
}
guard bound == 0 else { fatal("bind \(options.host):\(options.port): \(String(cString: strerror(errno)))") }
guard listen(listener, options.mode == "noaccept" ? 0 : 65535) == 0 else { fatal("listen failed") }
var actual = sockaddr_in()
var length = socklen_t(MemoryLayout<sockaddr_in>.size)
_ = withUnsafeMutablePointer(to: &actual) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
}
// Written with write(2): Swift 6 forbids touching C's stdout, and the line must not sit in a buffer.
_ = writeText(1, "listening \(UInt16(bigEndian: actual.sin_port))\n")

while options.mode == "noaccept" { sleep(3600) }
var accepted = 0
while true {
    let client = accept(listener, nil, nil)
    if client < 0 { continue }
    accepted += 1
    let captured = options
    let ordinal = accepted
    Thread.detachNewThread { serve(client, captured, ordinal: ordinal) }
}
