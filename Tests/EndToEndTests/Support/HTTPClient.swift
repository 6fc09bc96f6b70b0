import Foundation

/// Plain HTTP/1.1 requests over a `TestClient`, enough for the admin port and Prometheus.
enum HTTPClient {
    struct Response {
        var status: Int
        var head: String
        var body: String
    }

    static func get(port: UInt16, path: String, method: String = "GET", timeout: Double = 5) throws -> Response {
        let client = try TestClient(port: port, timeout: timeout)
        try client.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
        return try parse(String(decoding: try client.readToEnd(), as: UTF8.self))
    }

    static func parse(_ text: String) throws -> Response {
        guard let split = text.range(of: "\r\n\r\n") else { throw HarnessError("no HTTP head in '\(text.prefix(200))'") }
        let head = String(text[..<split.lowerBound])
        let parts = head.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError("bad status line '\(head.prefix(100))'") }
        return Response(status: status, head: head, body: String(text[split.upperBound...]))
    }

    /// `/stats` as a JSON object.
    static func stats(adminPort: UInt16) throws -> [String: Any] {
        let response = try get(port: adminPort, path: "/stats")
        guard response.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw HarnessError("bad /stats answer: \(response.status) \(response.body.prefix(200))")
        }
        return object
    }

    /// The first service of `/stats`; empty when the admin port does not answer.
    static func firstService(adminPort: UInt16) -> [String: Any] {
        ((try? stats(adminPort: adminPort))?["services"] as? [[String: Any]])?.first ?? [:]
    }
}
