import Foundation
import Glibc

extension Harness {
    /// Starts `path` with `arguments`, stdin and stdout on /dev/null, stderr to a file, with
    /// no signal blocked and every signal at its default; reap it with waitpid().
    ///
    /// Not Foundation's `Process`, for two reasons: it learns that a child has ended when a
    /// socket the child inherits closes, and dnsmasq closes every inherited descriptor at
    /// start-up, after which `Process` blocks its monitoring thread in waitpid() and with it
    /// every other `Process` in the test run; and its children inherit the test runner's
    /// blocked signals, so a SIGTERM or SIGHUP sent to them would never arrive.
    static func spawn(_ path: String, _ arguments: [String], environment: [String: String] = [:], standardError: String = "/dev/null") throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, standardError, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let variables = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"].merging(environment) { $1 }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw HarnessError("posix_spawn \(path): \(String(cString: strerror(result)))") }
        return pid
    }

    /// Runs a tool with Foundation's `Process` and returns what it printed on stdout, at
    /// most `timeout` seconds (then it is killed).
    static func run(_ path: String, _ arguments: [String], timeout: Double = 15) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let text = Harness.readAll(from: output.fileHandleForReading.fileDescriptor, timeout: timeout)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return text
    }
}
