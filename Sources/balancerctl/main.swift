import ArgumentParser
import Glibc

func printToStandardError(_ text: String) {
    let bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// The shared options may also come before the subcommand (`balancerctl --admin H:P status`):
/// they are moved behind its name, where argument-parser looks for them.
func reordered(_ arguments: [String]) -> [String] {
    var leading: [String] = []
    var rest = arguments[...]
    while let first = rest.first, first.hasPrefix("--") {
        leading.append(first)
        rest = rest.dropFirst()
        let takesValue = (first == "--admin" || first == "--token")
        if takesValue, let value = rest.first {
            leading.append(value)
            rest = rest.dropFirst()
        }
    }
    guard let subcommand = rest.first, !leading.isEmpty else { return arguments }
    return [subcommand] + leading + rest.dropFirst()
}

if CommandLine.arguments.count < 2 {
    // No subcommand is wrong usage, not a request for help.
    printToStandardError(BalancerctlCommand.helpMessage())
    exit(2)
}

do {
    var command = try BalancerctlCommand.parseAsRoot(reordered(Array(CommandLine.arguments.dropFirst())))
    do {
        try command.run()
    } catch let failure as CommandFailure {
        printToStandardError("balancerctl: \(failure.message)")
        exit(1)
    } catch let failure as AdminClient.Failure {
        printToStandardError("balancerctl: \(failure)")
        exit(1)
    }
    exit(0)
} catch {
    let code = BalancerctlCommand.exitCode(for: error)
    if code == .success {
        // --help.
        print(BalancerctlCommand.fullMessage(for: error))
        exit(0)
    }
    // Wrong usage: exit 2, as balancerd does (argument-parser's own code for it is 64).
    printToStandardError(BalancerctlCommand.fullMessage(for: error))
    exit(2)
}
