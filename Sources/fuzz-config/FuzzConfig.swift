// libFuzzer target for the configuration loader: any bytes must give a Config or
// ConfigErrors, never a crash. scripts/fuzz.sh builds it with -sanitize=fuzzer (and
// -DFUZZING); a plain build makes a runner that replays the files named on its command line.
import BalancerCore

/// Numeric addresses only: a fuzzer must not wait on DNS.
let numericOnly: ConfigLoader.Resolver = { host, port in
    SocketAddress.numeric(host: host, port: port).map { .success($0) }
        ?? .failure(SocketAddress.ResolveError(host: host, reason: "names are not resolved while fuzzing"))
}

func check(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let config = try? ConfigLoader.parse(text, path: "fuzz.yaml", resolver: numericOnly) {
        // What validated must hold what validation promises.
        precondition(config.services.allSatisfy { !$0.endpoints.isEmpty })
        precondition(Set(config.services.map(\.name)).count == config.services.count)
    }
}

#if FUZZING
/// libFuzzer's driver (the package manager renames an executable's `main`, so libFuzzer's
/// own `main` is not the entry point; this hands control to it instead).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The entry libFuzzer calls for each input (its own `main` links against it too).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@main
struct Fuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        _ = runFuzzerDriver(&argc, &argv, fuzzerTestOneInput)
    }
}
#else
import Foundation

@main
struct Replay {
    static func main() throws {
        for path in CommandLine.arguments.dropFirst() {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            data.withUnsafeBytes { check($0) }
        }
    }
}
#endif
