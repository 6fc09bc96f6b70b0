// libFuzzer target for the configuration loader: any bytes must give a Config or
// ConfigErrors, never a crash (the loader resolves nothing, so no input waits on DNS). FuzzDriver runs it under libFuzzer (scripts/fuzz.sh) or
// replays files.
import BalancerCore
import FuzzDriver

func check(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let config = try? ConfigLoader.parse(text, path: "fuzz.yaml") {
        // What validated must hold what validation promises.
        precondition(config.services.allSatisfy { !$0.sources.isEmpty })
        precondition(Set(config.services.map(\.name)).count == config.services.count)
    }
}

fuzzMain(check)
