import CEv
import Glibc

/// Starts another program beside this daemon (the successor of a takeover).
public enum ProcessLauncher {
    /// Starts `executable` with `arguments` (argv[1…]) and `environment` (`NAME=value`), no
    /// signal blocked, and no descriptor inherited but stdin, stdout and stderr: whatever
    /// else this process was given (a supervisor's pipe, say) is not the child's, and would
    /// outlive this process in it. Returns the child's pid.
    public static func spawn(_ executable: String, arguments: [String], environment: [String]) throws(SystemError) -> pid_t {
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        _ = cev_spawn_close_from(&actions, 3)
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SystemError(errno: result, operation: "start \(executable)") }
        return pid
    }

    /// This process's environment, as `NAME=value` lines.
    public static var currentEnvironment: [String] {
        var variables: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            variables.append(String(cString: pointer))
            entry += 1
        }
        return variables
    }
}
