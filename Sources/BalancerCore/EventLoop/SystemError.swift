import Glibc

/// A failed system call: the errno and what was being done.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let errno: Int32
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// The C library's text for the errno, such as "connection refused".
    public var reason: String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text).lowercased()
    }

    public var description: String { "\(operation): \(reason)" }

    /// Errors that come from this host running short, not from the peer: they must not be
    /// held against an endpoint.
    public var isLocalResourceShortage: Bool {
        errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM || errno == EADDRNOTAVAIL
    }
}
