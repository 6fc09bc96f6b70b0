import Synchronization

/// A listen address shared by services with `serverNames`: the table that picks a service
/// by the TLS server name a client asks for, how long its ClientHello may take, and the
/// address's figures (shared by every worker, and kept across reloads by address).
final class ListenerRoute: @unchecked Sendable {
    /// Connections closed before reaching any service, by why.
    final class Figures: Sendable {
        let unmatched = Atomic<Int>(0)
        let notTLS = Atomic<Int>(0)
        let timeouts = Atomic<Int>(0)
    }

    let address: SocketAddress
    let table: ServerNameTable<Service>
    /// The largest `helloTimeout` among the services sharing the address.
    let helloTimeout: Double
    let figures: Figures

    init(address: SocketAddress, services: [Service], figures: Figures) {
        self.address = address
        var table = ServerNameTable<Service>()
        for service in services {
            for name in service.config.serverNames { table.add(name, service) }
        }
        self.table = table
        helloTimeout = services.map(\.config.helloTimeout).max() ?? 5
        self.figures = figures
    }
}
