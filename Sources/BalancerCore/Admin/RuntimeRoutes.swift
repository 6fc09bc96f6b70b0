import Foundation

/// The admin port's runtime control: `GET /` (the status page) and
/// `POST /services/<service>/endpoints/<address>/state|weight|close`. Bodies are JSON,
/// decoded with Foundation (the admin path only, never the data path).
enum RuntimeRoutes {
    static let verbs: Set<String> = ["state", "weight", "close"]

    /// The answer for `request` when it is one of these routes; nil for any other path.
    static func respond(to request: AdminRequest, access: AdminAccess,
                        control: (RuntimeCommand) -> RuntimeCommand.Outcome) -> AdminResponse? {
        if request.path == "/" {
            guard request.method == "GET" else { return AdminResponse(status: 405, body: "method not allowed\n", headers: ["Allow: GET"]) }
            return AdminResponse(status: 200, contentType: "text/html; charset=utf-8", body: StatusPage.html(tokenRequired: access.token != nil),
                                 headers: ["Cache-Control: no-store"])
        }
        guard let (service, address, verb) = target(of: request.path) else { return nil }
        guard request.method == "POST" else {
            return AdminResponse(status: 405, body: "method not allowed\n", headers: ["Allow: POST"])
        }
        if let refusal = access.refusedCommand(request) { return refusal }
        let action: RuntimeCommand.Action
        switch decode(verb: verb, body: request.body) {
        case .success(let decoded): action = decoded
        case .failure(let problem): return .error(400, problem.message)
        }
        switch control(RuntimeCommand(service: service, address: address, action: action)) {
        case .done(let json):
            return AdminResponse(status: 200, contentType: "application/json", body: json + "\n")
        case .unknownService:
            return .error(404, "no service '\(service)'")
        case .unknownEndpoint:
            return .error(404, "service '\(service)' has no endpoint '\(address)'")
        }
    }

    /// `/services/<service>/endpoints/<address>/<verb>`, percent-decoded; nil for any other shape.
    static func target(of path: String) -> (service: String, address: String, verb: String)? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].isEmpty, parts[1] == "services", parts[3] == "endpoints",
              verbs.contains(String(parts[5])),
              let service = String(parts[2]).removingPercentEncoding, !service.isEmpty,
              let address = String(parts[4]).removingPercentEncoding, !address.isEmpty else { return nil }
        return (service, address, String(parts[5]))
    }

    struct BadBody: Error {
        var message: String
    }

    private struct StateBody: Decodable { var state: AdminState }
    private struct WeightBody: Decodable { var weight: Int }

    static func decode(verb: String, body: [UInt8]) -> Result<RuntimeCommand.Action, BadBody> {
        let data = Data(body)
        switch verb {
        case "state":
            guard let decoded = try? JSONDecoder().decode(StateBody.self, from: data) else {
                return .failure(BadBody(message: "the body must be {\"state\": \"drain\"|\"maintenance\"|\"ready\"}"))
            }
            return .success(.state(decoded.state))
        case "weight":
            guard let decoded = try? JSONDecoder().decode(WeightBody.self, from: data) else {
                return .failure(BadBody(message: "the body must be {\"weight\": N} with N from 1 to 256"))
            }
            guard (1...256).contains(decoded.weight) else {
                return .failure(BadBody(message: "weight \(decoded.weight) is out of range (1-256)"))
            }
            return .success(.weight(decoded.weight))
        default:
            let isEmpty = body.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }
            if isEmpty { return .success(.close) }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object.isEmpty else {
                return .failure(BadBody(message: "the body of close must be {} or empty"))
            }
            return .success(.close)
        }
    }
}
