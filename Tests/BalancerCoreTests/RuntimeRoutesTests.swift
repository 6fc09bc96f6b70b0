import Foundation
import Synchronization
import Testing
@testable import BalancerCore

/// The runtime routes of the admin port: routing, bodies, status codes and the security rules.
@Suite struct RuntimeRoutesTests {
    /// The commands the routes passed on.
    final class Recorder: Sendable {
        let commands = Mutex<[RuntimeCommand]>([])
    }

    private let recorder = Recorder()

    private func routes(token: String? = nil) -> AdminRoutes {
        let recorder = recorder
        return AdminRoutes(info: RuntimeInfo(configPath: "test.yaml"), services: { [] }, control: { command in
            recorder.commands.withLock { $0.append(command) }
            switch command.service {
            case "web": return command.address == "127.0.0.1:8081" || command.address == "[::1]:8081" ? .done(endpointJSON: "{\"address\":\"x\"}") : .unknownEndpoint
            default: return .unknownService
            }
        }, access: { AdminAccess(token: token, listen: SocketAddress(family: .ipv4, host: "127.0.0.1", port: 9901)) })
    }

    private func post(_ path: String, _ body: String, contentType: String? = "application/json", origin: String? = nil,
                      authorization: String? = nil, token: String? = nil) -> AdminResponse {
        routes(token: token).respond(to: AdminRequest(method: "POST", path: path, keepAlive: true, contentType: contentType, origin: origin,
                                                      authorization: authorization, body: Array(body.utf8)))
    }

    private var commands: [RuntimeCommand] { recorder.commands.withLock { $0 } }

    @Test(arguments: [(#"{"state":"drain"}"#, AdminState.drain), (#"{"state": "maintenance"}"#, .maintenance), (#" {"state":"ready"} "#, .ready)])
    func postState_passesTheCommand_andAnswersTheEntry(body: String, state: AdminState) {
        let response = post("/services/web/endpoints/127.0.0.1:8081/state", body)
        #expect(response.status == 200)
        #expect(response.contentType == "application/json")
        #expect(response.body == "{\"address\":\"x\"}\n")
        #expect(commands == [RuntimeCommand(service: "web", address: "127.0.0.1:8081", action: .state(state))])
    }

    @Test func postWeight_andClose_passTheirCommands() {
        #expect(post("/services/web/endpoints/127.0.0.1:8081/weight", #"{"weight":256}"#).status == 200)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/close", "").status == 200)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/close", "{}").status == 200)
        #expect(commands.map(\.action) == [.weight(256), .close, .close])
    }

    @Test func post_whenAddressIsPercentEncodedIPv6_decodesIt() {
        #expect(post("/services/web/endpoints/%5B%3A%3A1%5D%3A8081/state", #"{"state":"drain"}"#).status == 200)
        #expect(commands.first?.address == "[::1]:8081")
    }

    @Test(arguments: [("state", ""), ("state", "{"), ("state", #"{"state":"off"}"#), ("state", #"{"weight":2}"#), ("state", "[]"),
                      ("weight", #"{"weight":0}"#), ("weight", #"{"weight":257}"#), ("weight", #"{"weight":1.5}"#), ("weight", #"{"weight":"3"}"#),
                      ("close", #"{"now":true}"#), ("close", "nope")])
    func post_whenBodyIsBad_is400WithAJSONError(verb: String, body: String) throws {
        let response = post("/services/web/endpoints/127.0.0.1:8081/\(verb)", body)
        #expect(response.status == 400)
        let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
        #expect(object?["error"] is String)
        #expect(commands.isEmpty)
    }

    @Test func post_whenServiceOrEndpointIsUnknown_is404WithAJSONError() {
        let service = post("/services/nope/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#)
        #expect(service.status == 404)
        #expect(service.body.contains("\"error\":\"no service 'nope'\""))
        let endpoint = post("/services/web/endpoints/127.0.0.1:9/state", #"{"state":"drain"}"#)
        #expect(endpoint.status == 404)
        #expect(endpoint.body.contains("has no endpoint '127.0.0.1:9'"))
    }

    @Test func post_withoutJSONContentType_is415() {
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, contentType: nil).status == 415)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, contentType: "text/plain").status == 415)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, contentType: "Application/JSON; charset=utf-8").status == 200)
        #expect(commands.count == 1)
    }

    @Test func post_fromAnotherOrigin_is403_fromItsOwn_isServed() {
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, origin: "http://evil.example").status == 403)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, origin: "http://localhost:9901").status == 403)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, origin: "http://127.0.0.1:9901").status == 200)
        #expect(commands.count == 1)
    }

    @Test func token_isNeededForEverythingButHealthzAndThePage() {
        let routes = routes(token: "s3cret")
        func get(_ path: String, _ authorization: String? = nil) -> Int {
            routes.respond(to: AdminRequest(method: "GET", path: path, keepAlive: true, authorization: authorization)).status
        }
        #expect(get("/healthz") == 200)
        #expect(get("/") == 200)
        #expect(get("/stats") == 401)
        #expect(get("/metrics") == 401)
        #expect(get("/nope") == 401)
        #expect(get("/stats", "Bearer wrong") == 401)
        #expect(get("/stats", "Bearer s3cre") == 401)
        #expect(get("/stats", "s3cret") == 401)
        #expect(get("/stats", "Bearer s3cret") == 200)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, token: "s3cret").status == 401)
        #expect(post("/services/web/endpoints/127.0.0.1:8081/state", #"{"state":"drain"}"#, authorization: "Bearer s3cret", token: "s3cret").status == 200)
        #expect(commands.count == 1)
    }

    @Test func constantTimeEquals_comparesWholeTokens() {
        #expect(AdminAccess.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AdminAccess.constantTimeEquals(Array("abd".utf8), Array("abc".utf8)))
        #expect(!AdminAccess.constantTimeEquals(Array("ab".utf8), Array("abc".utf8)))
        #expect(!AdminAccess.constantTimeEquals(Array("abcd".utf8), Array("abc".utf8)))
        #expect(!AdminAccess.constantTimeEquals([], Array("abc".utf8)))
    }

    @Test func controlPaths_takePostOnly_andOtherShapesAre404() {
        let get = routes().respond(to: AdminRequest(method: "GET", path: "/services/web/endpoints/127.0.0.1:8081/state", keepAlive: true))
        #expect(get.status == 405)
        #expect(get.headers == ["Allow: POST"])
        #expect(post("/services/web/endpoints/127.0.0.1:8081/reboot", "{}").status == 404)
        #expect(post("/services/web/127.0.0.1:8081/state", "{}").status == 404)
        #expect(post("/services//endpoints/127.0.0.1:8081/state", "{}").status == 404)
    }

    @Test func page_isOneSelfContainedHTMLDocument() {
        let page = routes().respond(to: AdminRequest(method: "GET", path: "/", keepAlive: true))
        #expect(page.status == 200)
        #expect(page.contentType == "text/html; charset=utf-8")
        #expect(page.body.contains("fetch(\"/stats\""))
        #expect(page.body.contains("const tokenRequired = false;"))
        // No external asset: every src and href stays on the admin port (or is inline).
        #expect(!page.body.contains("src=\"http"))
        #expect(!page.body.contains("href=\"http"))
        #expect(routes(token: "t").respond(to: AdminRequest(method: "GET", path: "/", keepAlive: true)).body.contains("const tokenRequired = true;"))
        #expect(routes().respond(to: AdminRequest(method: "POST", path: "/", keepAlive: true)).status == 405)
    }
}
