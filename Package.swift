// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "balancerd",
    products: [
        .executable(name: "balancerd", targets: ["balancerd"]),
        .executable(name: "balancerctl", targets: ["balancerctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The C bridge: only what Swift cannot import from libev and glibc.
        .target(
            name: "CEv",
            linkerSettings: [.linkedLibrary("ev")]
        ),
        // Debian's libhttp-parser-dev, for the admin port's requests.
        .systemLibrary(name: "CHTTPParser"),
        // Debian's libc-ares-dev, for endpoints that follow DNS names.
        .systemLibrary(name: "CCares"),
        // Typed forms of libcurl's variadic calls (Debian's libcurl4-openssl-dev), for etcd.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(
            name: "BalancerCore",
            dependencies: ["CEv", "CHTTPParser", "CCares", "CCurl", .product(name: "Yams", package: "Yams")],
            // Release builds skip the run-time exclusivity checks: a callgrind profile put
            // them at ~11% of the instructions per proxied connection. Debug builds (and so
            // the test suite) keep them.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "balancerd",
            dependencies: ["BalancerCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The admin port's command-line client.
        .executableTarget(
            name: "balancerctl",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // A small TCP server used by the demo and the end-to-end tests as an upstream.
        .executableTarget(name: "testbackend"),
        // libFuzzer targets (scripts/fuzz.sh); a plain build gives corpus replayers.
        .target(name: "FuzzDriver"),
        .executableTarget(name: "fuzz-config", dependencies: ["BalancerCore", "FuzzDriver"]),
        .executableTarget(name: "fuzz-admin-request", dependencies: ["BalancerCore", "FuzzDriver"]),
        .executableTarget(name: "fuzz-client-hello", dependencies: ["BalancerCore", "FuzzDriver"]),
        .testTarget(name: "BalancerCoreTests", dependencies: ["BalancerCore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["balancerd", "balancerctl", "testbackend"], exclude: ["Support/dns-server.py", "Support/takeover-peer.py"]),
    ],
    swiftLanguageModes: [.v6]
)
