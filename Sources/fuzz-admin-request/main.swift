// libFuzzer target for the admin port's request parsing and routing: any bytes, split
// anywhere, must give requests, "need more", or a clean 400/431, never a crash.
// FuzzDriver runs it under libFuzzer (scripts/fuzz.sh) or replays files.
import BalancerCore
import FuzzDriver

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

fuzzMain(check)
