import Foundation

/// Plain HTTP/1.1 requests over a `TestClient`, enough for the admin port and Prometheus.
enum HTTPClient {
    struct Response {
        var status: Int
        var head: String
        var body: String
    }

    static func get(port: UInt16, path: String, method: String = "GET", timeout: Double = 5) throws -> Response {
        try request(port: port, method: method, path: path, timeout: timeout)
    }

    /// One request with extra header lines (such as `Content-Type: application/json`) and a body.
    static func request(port: UInt16, method: String, path: String, headers: [String] = [], body: String? = nil, timeout: Double = 5) throws -> Response {
        let client = try TestClient(port: port, timeout: timeout)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for line in headers { head += line + "\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        try client.send(head + "\r\n" + (body ?? ""))
        return try parse(String(decoding: try client.readToEnd(), as: UTF8.self))
    }

    /// A runtime command: `POST /services/<service>/endpoints/<address>/<verb>` with a JSON body.
    static func command(adminPort: UInt16, service: String = "web", address: String, verb: String, body: String,
                        headers: [String] = ["Content-Type: application/json"]) throws -> Response {
        try request(port: adminPort, method: "POST", path: "/services/\(service)/endpoints/\(address)/\(verb)", headers: headers, body: body)
    }

    /// The `/stats` entry of the first service's endpoint `address`.
    static func endpoint(adminPort: UInt16, _ address: String) -> [String: Any] {
        (firstService(adminPort: adminPort)["endpoints"] as? [[String: Any]])?.first { $0["address"] as? String == address } ?? [:]
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

    /// The service named `name` in `/stats`; empty when there is none.
    static func service(adminPort: UInt16, named name: String) -> [String: Any] {
        ((try? stats(adminPort: adminPort))?["services"] as? [[String: Any]])?.first { $0["name"] as? String == name } ?? [:]
    }

    /// The first service of `/stats`; empty when the admin port does not answer.
    static func firstService(adminPort: UInt16) -> [String: Any] {
        ((try? stats(adminPort: adminPort))?["services"] as? [[String: Any]])?.first ?? [:]
    }
}
