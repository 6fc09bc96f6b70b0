// libFuzzer target for the admin port's request parsing and routing: any bytes, split
// anywhere, must give requests, "need more", or a clean 400/431, never a crash.
// scripts/fuzz.sh builds it with -sanitize=fuzzer (and -DFUZZING); a plain build makes a
// runner that replays the files named on its command line.
import BalancerCore

nonisolated(unsafe) let routes = AdminRoutes(info: RuntimeInfo(configPath: "fuzz.yaml")) { [] }

func check(_ bytes: UnsafeRawBufferPointer) {
    guard !bytes.isEmpty else { return }
    // The first byte picks where the input is split, as reads would split it.
    let split = 1 + Int(bytes[0]) % max(1, bytes.count)
    let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
    let parser = AdminRequestParser()
    var offset = 0
    while offset < body.count {
        let end = min(body.count, offset + split)
        switch parser.feed(UnsafeRawBufferPointer(rebasing: body[offset..<end])) {
        case .needMore:
            offset = end
        case .request(let request, let consumed):
            precondition(consumed <= end - offset)
            _ = routes.respond(to: request)
            offset += consumed
            parser.reset()
        case .malformed, .tooLarge:
            return
        }
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
