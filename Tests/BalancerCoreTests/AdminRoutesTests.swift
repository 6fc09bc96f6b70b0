import Testing
@testable import BalancerCore

@Suite struct AdminRoutesTests {
    private func routes() throws -> AdminRoutes {
        let config = try ConfigLoader.parse("""
        services:
          - name: web
            listen: 127.0.0.1:30080
            endpoints: [127.0.0.1:8081, 127.0.0.1:8082]
        """, path: "/etc/balancerd/balancerd.yaml")
        let services = config.services.map(Service.init)
        return AdminRoutes(info: RuntimeInfo(configPath: config.path)) { services }
    }

    private func get(_ path: String, method: String = "GET") throws -> AdminResponse {
        try routes().respond(to: AdminRequest(method: method, path: path, keepAlive: true))
    }

    @Test func healthz_answersOk() throws {
        #expect(try get("/healthz") == AdminResponse(status: 200, body: "ok"))
    }

    @Test func unknownPath_is404_andOtherMethod_is405() throws {
        #expect(try get("/nope").status == 404)
        #expect(try get("/stats/extra").status == 404)
        let post = try get("/stats", method: "POST")
        #expect(post.status == 405)
        #expect(post.headers == ["Allow: GET"])
        #expect(try get("/metrics", method: "DELETE").status == 405)
    }

    @Test func stats_carriesEveryFieldOfTheContract() throws {
        let response = try get("/stats")
        #expect(response.contentType == "application/json")
        for field in ["\"version\":\"0.1.0\"", "\"uptimeSeconds\":", "\"generation\":1", "\"path\":\"/etc/balancerd/balancerd.yaml\"",
                      "\"lastReload\":null", "\"name\":\"web\"", "\"listen\":\"127.0.0.1:30080\"", "\"mode\":\"active-active\"",
                      "\"activeConnections\":0", "\"totalConnections\":0", "\"failedConnections\":0", "\"bytesIn\":0", "\"bytesOut\":0",
                      "\"address\":\"127.0.0.1:8081\"", "\"state\":\"up\"", "\"failedConnects\":0"] {
            #expect(response.body.contains(field), "missing \(field)")
        }
    }

    @Test func metrics_haveHelpTypeAndLabels() throws {
        let body = try get("/metrics").body
        for family in ["balancerd_connections_total", "balancerd_connections_active", "balancerd_bytes_total",
                       "balancerd_endpoint_up", "balancerd_config_reloads_total"] {
            #expect(body.contains("# HELP \(family) "))
            #expect(body.contains("# TYPE \(family) "))
        }
        #expect(body.contains("balancerd_endpoint_up{service=\"web\",endpoint=\"127.0.0.1:8082\"} 1\n"))
        #expect(body.contains("balancerd_bytes_total{service=\"web\",endpoint=\"127.0.0.1:8081\",direction=\"in\"} 0\n"))
        #expect(body.contains("balancerd_config_reloads_total{result=\"failure\"} 0\n"))
    }

    @Test func jsonQuote_escapesQuotesBackslashesAndControls() {
        #expect(StatsRenderer.quote("a\"b\\c\nd\u{01}") == "\"a\\\"b\\\\c\\nd\\u0001\"")
    }
}
