// libFuzzer target for the ClientHello reader of the routing by server name: any bytes,
// split anywhere, must give "need more", a server name (or none) or "not TLS", never a
// crash, and the same answer however they were split. FuzzDriver runs it under libFuzzer
// (scripts/fuzz.sh) or replays files.
import BalancerCore
import FuzzDriver

func check(_ bytes: UnsafeRawBufferPointer) {
    guard !bytes.isEmpty else { return }
    // The first byte picks where the input is split, as reads would split it.
    let split = 1 + Int(bytes[0]) % max(1, bytes.count)
    let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
    var hello = ClientHello()
    var outcome = ClientHello.Outcome.needMore
    var offset = 0
    while offset < body.count, outcome == .needMore {
        let end = min(body.count, offset + split)
        outcome = hello.feed(UnsafeRawBufferPointer(rebasing: body[offset..<end]))
        offset = end
    }
    precondition(hello.bytes.count <= body.count)
    if outcome != .needMore {
        // Fed whole, the bytes read give the same answer.
        precondition(ClientHello.parse(hello.bytes) == outcome)
    }
}

fuzzMain(check)
