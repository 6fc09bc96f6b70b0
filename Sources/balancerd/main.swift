import ArgumentParser
import Glibc

func printToStandardError(_ text: String) {
    let bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

do {
    let command = try BalancerdCommand.parse()
    do {
        try command.run()
    } catch let code as ExitCode {
        exit(code.rawValue)
    }
    exit(0)
} catch {
    let code = BalancerdCommand.exitCode(for: error)
    if code == .success {
        // --help and --version.
        print(BalancerdCommand.fullMessage(for: error))
        exit(0)
    }
    printToStandardError(BalancerdCommand.fullMessage(for: error))
    exit(2)
}
