/// A command from the admin port for one endpoint of one service.
public struct RuntimeCommand: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case state(AdminState)
        case weight(Int)
        /// Close the endpoint's open connections now.
        case close
    }

    public var service: String
    /// As `/stats` shows it (percent-decoding done).
    public var address: String
    public var action: Action

    public init(service: String, address: String, action: Action) {
        self.service = service
        self.address = address
        self.action = action
    }

    /// What carrying it out gave.
    public enum Outcome: Sendable, Equatable {
        /// Done: the endpoint's new `/stats` entry.
        case done(endpointJSON: String)
        case unknownService
        case unknownEndpoint
    }
}
