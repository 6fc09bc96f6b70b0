import Glibc
import Testing
import BalancerCore

/// The socket helpers against the real kernel, on 127.0.0.1.
@Suite struct SocketTests {
    private func noDelay(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length)
        return value
    }

    /// Waits (bounded) for the connection in the listener's backlog.
    private func acceptOne(_ listener: Int32) throws -> Int32 {
        var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        try #require(poll(&entry, 1, 2000) == 1)
        guard case .done(let fd) = try Socket.accept(listener) else { throw SystemError(errno: EAGAIN, operation: "accept") }
        return fd
    }

    @Test func listen_setsNoDelay_whichAcceptedConnectionsInherit() throws {
        let listener = try Socket.listen(on: SocketAddress(family: .ipv4, host: "127.0.0.1", port: 0))
        defer { Socket.close(listener) }
        #expect(noDelay(listener) != 0)
        let address = try #require(Socket.localAddress(listener))
        let client = try Socket.open(family: .ipv4)
        defer { Socket.close(client) }
        _ = try Socket.connect(client, to: address)
        let accepted = try acceptOne(listener)
        defer { Socket.close(accepted) }
        #expect(noDelay(accepted) != 0)
    }

    @Test func checkBindable_whenAGroupListensWithReusePort_throwsAddressInUse() throws {
        let first = try Socket.listen(on: SocketAddress(family: .ipv4, host: "127.0.0.1", port: 0), reusePort: true)
        defer { Socket.close(first) }
        let address = try #require(Socket.localAddress(first))
        // Another SO_REUSEPORT socket of the same user joins the group without complaint...
        let second = try Socket.listen(on: address, reusePort: true)
        Socket.close(second)
        // ...which is why a plain bind is tried first.
        #expect(throws: SystemError(errno: EADDRINUSE, operation: "bind \(address)")) { try Socket.checkBindable(address) }
    }
}
