/// `balancerctl status`: one row per endpoint, columns aligned (text to the left, figures
/// to the right), from a `/stats` answer.
enum StatusTable {
    static let columns = ["SERVICE", "ENDPOINT", "STATE", "ADMIN", "WEIGHT", "ACTIVE", "TOTAL", "BYTES-IN", "BYTES-OUT"]
    /// Columns from WEIGHT on are figures.
    static let firstFigure = 4

    static func rows(stats: [String: Any]) -> [[String]] {
        var rows: [[String]] = []
        for service in stats["services"] as? [[String: Any]] ?? [] {
            let name = service["name"] as? String ?? "?"
            for endpoint in service["endpoints"] as? [[String: Any]] ?? [] {
                let text = { (key: String) in endpoint[key].map { "\($0)" } ?? "-" }
                rows.append([name, text("address"), text("state"), text("admin"), text("weight"),
                             text("activeConnections"), text("totalConnections"), text("bytesIn"), text("bytesOut")])
            }
        }
        return rows
    }

    static func render(_ rows: [[String]]) -> String {
        let all = [columns] + rows
        let widths = columns.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - row[column].count)
                return column >= firstFigure ? padding + row[column] : row[column] + padding
            }.joined(separator: "  ").trimmingTrailingSpaces
        }.joined(separator: "\n") + "\n"
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var text = Substring(self)
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}
