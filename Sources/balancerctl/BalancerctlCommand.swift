import ArgumentParser
import Foundation

/// Options every subcommand takes.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "The admin port, HOST:PORT.")
    var admin: String = "127.0.0.1:9901"

    @Option(name: .long, help: "The admin port's bearer token (admin.token).")
    var token: String?

    @Flag(name: .long, help: "Print the admin port's JSON answer as it is.")
    var json = false

    func validate() throws {
        do {
            _ = try client()
        } catch {
            throw ValidationError(error.description)
        }
    }

    func client() throws(AdminClient.Failure) -> AdminClient {
        try AdminClient(address: admin, token: token)
    }
}

/// The endpoint a command is for, with the shared options.
struct EndpointTarget: ParsableArguments {
    @OptionGroup var options: AdminOptions
    @Argument(help: "The service's name.") var service: String
    @Argument(help: "The endpoint's address, as status shows it.") var address: String

    func post(verb: String, body: String) throws {
        try BalancerctlCommand.post(options, service: service, address: address, verb: verb, body: body)
    }
}

/// drain, maintenance and ready: the same command with another state.
protocol StateCommand: ParsableCommand {
    static var state: String { get }
    var target: EndpointTarget { get }
}

extension StateCommand {
    func run() throws { try target.post(verb: "state", body: "{\"state\":\"\(Self.state)\"}") }
}

/// An answer that is not a success: exit 1 with its message on stderr.
struct CommandFailure: Error {
    var message: String
}

/// `balancerctl`: speaks to balancerd's admin port. Exit codes: 0 success, 1 an error
/// answer (or no answer), 2 wrong usage.
struct BalancerctlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balancerctl",
        abstract: "Controls a running balancerd through its admin port.",
        subcommands: [Status.self, Drain.self, Maintenance.self, Ready.self, Weight.self, Close.self])

    /// Sends a runtime command for `service`'s endpoint `address` and prints the endpoint's new state.
    static func post(_ options: AdminOptions, service: String, address: String, verb: String, body: String) throws {
        let path = "/services/\(Self.escape(service))/endpoints/\(Self.escape(address))/\(verb)"
        let answer = try options.client().request("POST", path, json: body)
        guard answer.status == 200 else { throw failure(answer) }
        if options.json {
            print(answer.body, terminator: answer.body.hasSuffix("\n") ? "" : "\n")
            return
        }
        let entry = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any] ?? [:]
        let field = { (key: String) in entry[key].map { "\($0)" } ?? "?" }
        print("\(service) \(field("address")): admin \(field("admin")), state \(field("state")), weight \(field("weight")), active \(field("activeConnections"))")
    }

    /// The error answer's message (`{"error": ...}`, or its text).
    static func failure(_ answer: AdminClient.Response) -> CommandFailure {
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any]
        let message = object?["error"] as? String ?? answer.body.trimmingCharacters(in: .whitespacesAndNewlines)
        return CommandFailure(message: "\(answer.status): \(message)")
    }

    /// A path segment: everything but unreserved characters percent-encoded (IPv6's `[`, `]`, `:`).
    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every service's endpoints: health, admin state, weight, connections, bytes.")
        @OptionGroup var options: AdminOptions

        func run() throws {
            let answer = try options.client().request("GET", "/stats")
            guard answer.status == 200 else { throw BalancerctlCommand.failure(answer) }
            if options.json {
                print(answer.body, terminator: answer.body.hasSuffix("\n") ? "" : "\n")
                return
            }
            guard let stats = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any] else {
                throw CommandFailure(message: "/stats is not JSON")
            }
            print(StatusTable.render(StatusTable.rows(stats: stats)), terminator: "")
        }
    }

    struct Drain: StateCommand {
        static let configuration = CommandConfiguration(abstract: "No new connections to the endpoint; open ones go on; checks go on.")
        static let state = "drain"
        @OptionGroup var target: EndpointTarget
    }

    struct Maintenance: StateCommand {
        static let configuration = CommandConfiguration(abstract: "No new connections and no health checks; open ones go on.")
        static let state = "maintenance"
        @OptionGroup var target: EndpointTarget
    }

    struct Ready: StateCommand {
        static let configuration = CommandConfiguration(abstract: "Back to normal: health decides again.")
        static let state = "ready"
        @OptionGroup var target: EndpointTarget
    }

    struct Weight: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sets the endpoint's weight (1-256), in force at once.")
        @OptionGroup var target: EndpointTarget
        @Argument(help: "The new weight, 1-256.") var weight: Int

        func validate() throws {
            guard (1...256).contains(weight) else { throw ValidationError("weight \(weight) is out of range (1-256)") }
        }

        func run() throws { try target.post(verb: "weight", body: "{\"weight\":\(weight)}") }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Closes the endpoint's open connections now.")
        @OptionGroup var target: EndpointTarget
        func run() throws { try target.post(verb: "close", body: "{}") }
    }
}
