// The driver shared by the fuzz targets. Built by scripts/fuzz.sh with -sanitize=fuzzer
// and -DFUZZING, it hands control to libFuzzer; in a plain build it replays the files named
// on the command line (a corpus, or a crash being fixed).
#if !FUZZING
import Foundation
#endif

/// The property each target checks; set once by `fuzzMain` before any input runs.
nonisolated(unsafe) private var currentCheck: (UnsafeRawBufferPointer) -> Void = { _ in }

/// Runs `check` on every input: libFuzzer's, or the files given as arguments.
public func fuzzMain(_ check: @escaping (UnsafeRawBufferPointer) -> Void) {
    currentCheck = check
    #if FUZZING
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    _ = runFuzzerDriver(&argc, &argv, fuzzerTestOneInput)
    #else
    for path in CommandLine.arguments.dropFirst() {
        guard let data = FileManager.default.contents(atPath: path) else {
            fatalError("cannot read \(path)")
        }
        data.withUnsafeBytes { check($0) }
    }
    #endif
}

#if FUZZING
/// The entry libFuzzer calls for each input (its own `main` links against it too).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    currentCheck(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// libFuzzer's driver: the package manager renames an executable's `main`, so libFuzzer's
/// own `main` is not the entry point and this hands control to it instead.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif
