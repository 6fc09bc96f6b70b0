// libFuzzer target for the configuration loader: any bytes must give a Config or
// ConfigErrors, never a crash. FuzzDriver runs it under libFuzzer (scripts/fuzz.sh) or
// replays files.
import BalancerCore
import FuzzDriver

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

fuzzMain(check)
