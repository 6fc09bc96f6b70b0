import ArgumentParser
import BalancerCore

extension LogLevel: ExpressibleByArgument {}

/// The command line of the contract. Exit codes: 0 clean, 1 configuration or start-up
/// error, 2 wrong usage (argument-parser's own default for that is 64).
struct BalancerdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balancerd",
        abstract: "A userspace L4 (TCP) load balancer.",
        discussion: "Runs in the foreground. SIGTERM or SIGINT drains and exits; SIGHUP reloads; SIGUSR2 starts the same executable with --takeover, which takes over every listener and connection (an upgrade in place).",
        version: "balancerd \(BalancerVersion.string)")

    @Option(name: .long, help: "Configuration file.")
    var config: String = "/etc/balancerd/balancerd.yaml"

    @Flag(name: .long, help: "Parse and validate the configuration only, then exit.")
    var checkConfig = false

    @Option(name: .long, help: "debug, info, notice, warning or error; overrides log.level.")
    var logLevel: LogLevel?

    @Flag(name: .long, help: "Take over the listeners and open connections of the balancerd running with this configuration, then serve them; it exits once it has handed everything over.")
    var takeover = false

    func run() throws {
        if checkConfig {
            do {
                let loaded = try ConfigLoader.load(path: config)
                let services = loaded.services.count
                let endpoints = loaded.endpointCount
                // Names are not resolved here: they are counted apart.
                let names = loaded.dnsNames.count
                let followed = names == 0 ? "" : ", \(names) name\(names == 1 ? "" : "s") to resolve"
                print("configuration OK: \(services) service\(services == 1 ? "" : "s"), \(endpoints) endpoint\(endpoints == 1 ? "" : "s")\(followed)")
            } catch {
                for problem in error.errors { printToStandardError("balancerd: \(problem)") }
                throw ExitCode(1)
            }
            return
        }
        let status = Daemon(configPath: config, logLevelOverride: logLevel, takeover: takeover,
                            arguments: Array(CommandLine.arguments.dropFirst())).run()
        if status != 0 { throw ExitCode(status) }
    }
}
