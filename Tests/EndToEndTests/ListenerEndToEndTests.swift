import Foundation
import Glibc
import Testing

@Suite struct ListenerEndToEndTests {
    @Test func listen_onIPv6Loopback_servesClients() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let config = ConfigText.service(port: port, endpoints: [backend.address])
            .replacingOccurrences(of: "listen: 127.0.0.1:\(port)", with: "listen: \"[::1]:\(port)\"")
        let daemon = try DaemonProcess(config: config)
        let client = try TestClient(port: port, ipv6: true)
        #expect(try client.readLine() == "a")
        _ = daemon
    }

    /// CPU seconds (user + system) the process has used so far.
    private func cpuSeconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15 (1-based in proc(5)).
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
    }

    @Test func accept_whenFileDescriptorsRunOut_pausesWithoutSpinningAndRecovers() throws {
        let backend = try BackendProcess(name: "a")
        let port = Harness.freePort()
        let config = ConfigText.service(port: port, endpoints: [backend.address])
        // A hard limit of 64 descriptors: about fifteen proxied connections fill it.
        let daemon = try DaemonProcess(config: config, launcher: ["/usr/bin/prlimit", "--nofile=64:64", "--"])
        var clients: [TestClient] = []
        for _ in 0..<40 { clients.append(try TestClient(port: port, timeout: 1)) }
        #expect(Harness.waitUntil(timeout: 5) { daemon.log.contains("listeners paused") })
        // While descriptors stay exhausted, the loop must sleep, not spin.
        let before = cpuSeconds(pid: daemon.pid)
        usleep(1_500_000)
        let spent = cpuSeconds(pid: daemon.pid) - before
        #expect(spent < 0.5, "the daemon used \(spent)s of CPU in 1.5s while out of descriptors")
        // Those accepted were greeted long ago (with several worker loops, not necessarily
        // the first to connect). Closing them frees descriptors: clients that waited in
        // the backlog are served next.
        var greeted = clients.filter { $0.isReadable(within: 0.01) }
        var waiting = clients.filter { client in !greeted.contains { $0 === client } }
        #expect(greeted.count >= 5)
        #expect(waiting.count >= 20)
        clients.removeAll()
        for client in greeted { client.shutdownWrite() }
        greeted.removeAll()
        #expect(Harness.waitUntil(timeout: 5) { waiting.filter { $0.isReadable(within: 0) }.count >= 5 })
        // Everyone leaves; a newcomer is served once the backlog ahead of it is worked off.
        waiting.removeAll()
        let late = try TestClient(port: port, timeout: 5)
        #expect(try late.readLine() == "a")
        #expect(daemon.log.contains("accepting again"))
    }
}
