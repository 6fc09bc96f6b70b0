// A small TCP server that plays an endpoint in the demo and the end-to-end tests.
//
//   testbackend --name NAME [--host 127.0.0.1] [--port 0] [--mode echo|silent|close|reset]
//
// It prints "listening PORT" on stdout once it accepts connections. In the default echo
// mode each connection gets "NAME\n", then every byte it sends echoed back, and once the
// client half-closes, "eof N\n" (N bytes received) before the server closes. Other modes:
// silent accepts and never answers; close closes at once; reset closes with an RST;
// noaccept listens with a backlog of 0 and never accepts (once the backlog is full, a
// connect to it hangs, as to a host that has gone away).
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

func serve(_ fd: Int32, _ options: Options) {
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
    default:
        break
    }
    guard writeText(fd, "\(options.name)\n") else { return }
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    var total = 0
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return }
        if n == 0 { break }
        total += n
        guard buffer.withUnsafeBytes({ writeAll(fd, $0.baseAddress!, n) }) else { return }
    }
    _ = writeText(fd, "eof \(total)\n")
    shutdown(fd, Int32(SHUT_WR))
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
guard listen(listener, options.mode == "noaccept" ? 0 : 1024) == 0 else { fatal("listen failed") }
var actual = sockaddr_in()
var length = socklen_t(MemoryLayout<sockaddr_in>.size)
_ = withUnsafeMutablePointer(to: &actual) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
}
// Written with write(2): Swift 6 forbids touching C's stdout, and the line must not sit in a buffer.
_ = writeText(1, "listening \(UInt16(bigEndian: actual.sin_port))\n")

while options.mode == "noaccept" { sleep(3600) }
while true {
    let client = accept(listener, nil, nil)
    if client < 0 { continue }
    let captured = options
    Thread.detachNewThread { serve(client, captured) }
}
