// libFuzzer target for the admin port's request parsing and routing (runtime commands too): any bytes, split
// anywhere, must give requests, "need more", or a clean 400/431, never a crash.
// FuzzDriver runs it under libFuzzer (scripts/fuzz.sh) or replays files.
import BalancerCore
import FuzzDriver

/// Runtime commands reach a stand-in that knows one service and endpoint, so that bodies,
/// paths and headers are all decoded; each request goes through the routes without a token
/// and with one.
func control(_ command: RuntimeCommand) -> RuntimeCommand.Outcome {
    guard command.service == "web" else { return .unknownService }
    return command.address == "127.0.0.1:8081" ? .done(endpointJSON: "{}") : .unknownEndpoint
}

nonisolated(unsafe) let routes = AdminRoutes(info: RuntimeInfo(configPath: "fuzz.yaml"), services: { [] }, control: control)
nonisolated(unsafe) let guarded = AdminRoutes(info: RuntimeInfo(configPath: "fuzz.yaml"), services: { [] }, control: control,
                                              access: { AdminAccess(token: "s3cret") })

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
            _ = guarded.respond(to: request)
            offset += consumed
            parser.reset()
        case .malformed, .tooLarge:
            return
        }
    }
}

fuzzMain(check)
