/// An endpoint's state as set from the admin port, apart from its health.
public enum AdminState: String, Sendable, Codable, CaseIterable {
    /// Normal: health decides.
    case ready
    /// No new connections; open ones go on; health checks go on.
    case drain
    /// No new connections and no health checks; open ones go on.
    case maintenance
}
