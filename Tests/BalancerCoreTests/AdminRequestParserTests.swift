import Testing
import BalancerCore

@Suite struct AdminRequestParserTests {
    private func feed(_ parser: AdminRequestParser, _ text: String) -> AdminRequestParser.Outcome {
        Array(text.utf8).withUnsafeBytes { parser.feed($0) }
    }

    @Test func parse_whenSimpleGet_givesMethodPathAndKeepAlive() {
        let text = "GET /stats?pretty=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        let outcome = feed(AdminRequestParser(), text)
        #expect(outcome == .request(AdminRequest(method: "GET", path: "/stats", keepAlive: true), consumed: text.utf8.count))
    }

    @Test func parse_whenClientAsksToClose_isNotKeptAlive() {
        let outcome = feed(AdminRequestParser(), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        guard case .request(let request, _) = outcome else { Issue.record("no request: \(outcome)"); return }
        #expect(request.keepAlive == false)
        let old = feed(AdminRequestParser(), "GET /healthz HTTP/1.0\r\n\r\n")
        guard case .request(let request10, _) = old else { Issue.record("no request: \(old)"); return }
        #expect(request10.keepAlive == false)
    }

    @Test func parse_whenBytesArriveOneAtATime_waitsForTheWholeRequest() {
        let parser = AdminRequestParser()
        let text = Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)
        for byte in text.dropLast() {
            #expect([byte].withUnsafeBytes { parser.feed($0) } == .needMore)
        }
        let last = [text.last!].withUnsafeBytes { parser.feed($0) }
        #expect(last == .request(AdminRequest(method: "GET", path: "/metrics", keepAlive: true), consumed: 1))
    }

    @Test func parse_whenRequestsArePipelined_stopsAfterTheFirst() {
        let parser = AdminRequestParser()
        let first = "GET /healthz HTTP/1.1\r\n\r\n"
        let outcome = feed(parser, first + "GET /stats HTTP/1.1\r\n\r\n")
        #expect(outcome == .request(AdminRequest(method: "GET", path: "/healthz", keepAlive: true), consumed: first.utf8.count))
        parser.reset()
        guard case .request(let second, _) = feed(parser, "GET /stats HTTP/1.1\r\n\r\n") else { Issue.record("no second request"); return }
        #expect(second.path == "/stats")
    }

    @Test(arguments: ["GARBAGE\r\n\r\n", "GET / HTTP/9.x\r\n\r\n", "\u{01}\u{02}\u{03}\r\n", "GET /stats HTTP/1.1\r\nBad Header\r\n\r\n"])
    func parse_whenMalformed_isRejected(text: String) {
        let outcome = feed(AdminRequestParser(), text)
        guard case .malformed = outcome else { Issue.record("expected malformed, got \(outcome)"); return }
    }

    @Test func parse_whenLargerThan8KiB_isTooLarge() {
        let parser = AdminRequestParser()
        let head = "GET /stats HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 9000)
        #expect(feed(parser, head) == .tooLarge)
        let complete = AdminRequestParser()
        #expect(feed(complete, head + "\r\n\r\n") == .tooLarge)
    }

    @Test func parse_whenPostWithBodyArrivesInPieces_givesBodyAndTheHeadersCommandsNeed() {
        let body = #"{"state":"drain"}"#
        let text = "POST /services/web/endpoints/%5B%3A%3A1%5D%3A80/state HTTP/1.1\r\nContent-Type: application/json\r\n"
            + "X-Other: 1\r\nOrigin: http://127.0.0.1:9901\r\nAuthorization: Bearer s3cret\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        let parser = AdminRequestParser()
        let bytes = Array(text.utf8)
        var outcome = AdminRequestParser.Outcome.needMore
        // Three bytes at a time: names, values and the body all come split.
        for start in stride(from: 0, to: bytes.count, by: 3) {
            outcome = Array(bytes[start..<min(bytes.count, start + 3)]).withUnsafeBytes { parser.feed($0) }
        }
        guard case .request(let request, _) = outcome else { Issue.record("no request: \(outcome)"); return }
        #expect(request.method == "POST")
        #expect(request.path == "/services/web/endpoints/%5B%3A%3A1%5D%3A80/state")
        #expect(request.contentType == "application/json")
        #expect(request.origin == "http://127.0.0.1:9901")
        #expect(request.authorization == "Bearer s3cret")
        #expect(String(decoding: request.body, as: UTF8.self) == body)
    }

    @Test func parse_whenBodyPassesTheLimit_isTooLarge() {
        let body = String(repeating: "x", count: AdminRequestParser.maxRequestBytes)
        let text = "POST /services/a/endpoints/b/state HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        #expect(feed(AdminRequestParser(), text) == .tooLarge)
    }
}
