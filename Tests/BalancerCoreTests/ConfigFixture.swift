import Testing
@testable import BalancerCore

/// Loading configuration text for the unit tests, as if read from `test.yaml`.
enum ConfigFixture {
    static func parse(_ text: String) throws -> Config {
        try ConfigLoader.parse(text, path: "test.yaml")
    }

    /// The errors for `text`, which must not validate.
    static func errors(_ text: String) -> [ConfigError] {
        do {
            _ = try ConfigLoader.parse(text, path: "test.yaml")
            Issue.record("expected the configuration to be rejected")
            return []
        } catch {
            return error.errors
        }
    }
}
