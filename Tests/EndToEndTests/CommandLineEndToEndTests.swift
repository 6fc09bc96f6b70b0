import Foundation
import Glibc
import Testing

@Suite struct CommandLineEndToEndTests {
    /// Runs balancerd to completion (at most 10 s) with `arguments`.
    private func run(_ arguments: [String]) throws -> Program.Outcome {
        try Program.run(Harness.balancerd, arguments)
    }

    private func writeConfig(_ text: String) throws -> String {
        let path = Harness.temporaryDirectory().appendingPathComponent("balancerd.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func version_printsNameAndVersion() throws {
        let outcome = try run(["--version"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "balancerd 0.1.0\n")
    }

    @Test func checkConfig_whenValid_countsServicesAndEndpointsInGoodEnglish() throws {
        let one = try writeConfig(ConfigText.service(port: 30080, endpoints: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]))
        let outcome = try run(["--check-config", "--config", one])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "configuration OK: 1 service, 3 endpoints\n")
        let single = try writeConfig(ConfigText.service(port: 30080, endpoints: ["127.0.0.1:1"]))
        #expect(try run(["--check-config", "--config", single]).stdout == "configuration OK: 1 service, 1 endpoint\n")
    }

    @Test func checkConfig_whenInvalid_namesFileLineColumnAndKeyAndExitsOne() throws {
        let path = try writeConfig("""
        services:
          - name: web
            listen: 0.0.0.0:70000
            endpoints: [127.0.0.1:8081]
        """)
        let outcome = try run(["--check-config", "--config", path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr == "balancerd: \(path):3:13: services[0].listen: port 70000 is out of range (1-65535)\n")
        #expect(outcome.stdout.isEmpty)
    }

    @Test func start_whenConfigIsInvalid_exitsOneWithTheError() throws {
        let path = try writeConfig("services:\n  - name: web\n    listen: 127.0.0.1:30080\n    endpoints: []\n")
        let outcome = try run(["--config", path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("\(path):4:16: services[0].endpoints: a service needs at least one endpoint"))
    }

    @Test func start_whenConfigFileIsMissing_exitsOne() throws {
        let outcome = try run(["--config", "/nonexistent/balancerd.yaml"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("balancerd: /nonexistent/balancerd.yaml:1:1: cannot read"))
    }

    @Test func start_whenListenPortIsTaken_exitsOne() throws {
        let holder = try BackendProcess(name: "holder")
        let path = try writeConfig(ConfigText.service(port: holder.port, endpoints: ["127.0.0.1:1"]))
        let outcome = try run(["--config", path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("bind 127.0.0.1:\(holder.port): address already in use"))
    }

    @Test(arguments: [["--log-level", "loud"], ["--no-such-flag"], ["stray"]])
    func usage_whenWrong_exitsTwo(arguments: [String]) throws {
        let outcome = try run(arguments)
        #expect(outcome.status == 2)
        #expect(!outcome.stderr.isEmpty)
    }

    @Test func help_printsUsageAndExitsZero() throws {
        let outcome = try run(["--help"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("--check-config"))
    }
}
