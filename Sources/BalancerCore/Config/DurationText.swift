/// Durations as the configuration writes them: an integer and a unit, `ms`, `s`, `m` or `h`.
public enum DurationText {
    /// Seconds for `text`, or nil when it is not such a duration.
    public static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                  digits.count <= 12, let value = Int(digits) else { return nil }
            return Double(value) * scale
        }
        return nil
    }

    /// The shortest exact text for `seconds` (for logs and stats).
    public static func format(_ seconds: Double) -> String {
        let ms = Int((seconds * 1000).rounded())
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
