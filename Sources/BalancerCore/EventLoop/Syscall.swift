import Glibc

/// The outcome of a non-blocking system call that did not fail.
public enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

/// The one doorway for system calls: retries EINTR, turns EAGAIN into `.wouldBlock`, and
/// throws a `SystemError` with errno and `operation` for anything else.
/// `operation` is only evaluated on failure, so the hot path builds no strings.
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .done(result) }
        let code = errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(errno: code, operation: operation())
    }
}

/// `syscall` for calls that never block (socket, bind, setsockopt): EAGAIN is an error too.
@inline(__always)
@discardableResult
public func syscallChecked<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(errno: code, operation: operation())
    }
}
