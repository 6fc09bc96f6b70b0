import Testing
@testable import BalancerCore

/// The answer parsers of the protocol checks, fed bytes by hand: no socket anywhere.
@Suite struct HealthCheckExchangeTests {
    private func bytes(_ text: String) -> ArraySlice<UInt8> { Array(text.utf8)[...] }

    /// Feeds `answer` one byte at a time, as a slow endpoint would send it, and returns the
    /// first verdict that is not `.more` (or the verdict at the end, with `ended`).
    private func judgeByteByByte(_ exchange: inout some CheckExchange, _ answer: [UInt8], endsWithClose: Bool = true) -> CheckVerdict {
        for count in 0...answer.count {
            let verdict = exchange.judge(answer.prefix(count), ended: false)
            if verdict != .more { return verdict }
        }
        return endsWithClose ? exchange.judge(answer[...], ended: true) : .more
    }

    // MARK: http

    @Test func http_request_isAGetWithHostAndConnectionClose() {
        var check = HTTPCheck()
        check.path = "/ready"
        let exchange = HTTPCheckExchange(check: check, host: "127.0.0.1:8081")
        let text = String(decoding: exchange.request, as: UTF8.self)
        #expect(text.hasPrefix("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))

        check.host = "web.local"
        #expect(String(decoding: HTTPCheckExchange(check: check, host: "127.0.0.1:8081").request, as: UTF8.self).contains("\r\nHost: web.local\r\n"))
    }

    @Test func http_whenStatusIsInTheDefaultRange_passesAsSoonAsTheStatusLineIsIn() {
        var exchange = HTTPCheckExchange(check: HTTPCheck(), host: "h")
        #expect(exchange.judge(bytes("HTTP/1.1 200 O"), ended: false) == .more)
        #expect(exchange.judge(bytes("HTTP/1.1 200 OK\r\n"), ended: false) == .pass("status 200"))
        #expect(exchange.judge(bytes("HTTP/1.0 302 Found\r\n"), ended: false) == .pass("status 302"))
    }

    @Test func http_whenStatusIsOutOfRange_failsWithTheStatus() {
        var exchange = HTTPCheckExchange(check: HTTPCheck(), host: "h")
        #expect(exchange.judge(bytes("HTTP/1.1 503 Service Unavailable\r\n\r\n"), ended: false) == .fail("status 503"))
        #expect(exchange.judge(bytes("HTTP/1.1 404 Not Found\r\n"), ended: false) == .fail("status 404"))
    }

    @Test func http_withAListOfStatusesAndRanges_passesOnlyThose() {
        var check = HTTPCheck()
        check.expectStatus = [200...299, 304...304]
        var exchange = HTTPCheckExchange(check: check, host: "h")
        #expect(exchange.judge(bytes("HTTP/1.1 304 Not Modified\r\n"), ended: false) == .pass("status 304"))
        #expect(exchange.judge(bytes("HTTP/1.1 301 Moved\r\n"), ended: false) == .fail("status 301"))
    }

    @Test func http_withExpectBody_passesWhenTheBodyContainsIt_evenSentByteByByte() {
        var check = HTTPCheck()
        check.expectBody = "ok"
        var exchange = HTTPCheckExchange(check: check, host: "h")
        let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstatus ok".utf8)
        #expect(judgeByteByByte(&exchange, answer, endsWithClose: false) == .pass("status 200"))
    }

    @Test func http_withExpectBody_whenTheBodyIsCompleteWithoutIt_failsBeforeTheClose() {
        var check = HTTPCheck()
        check.expectBody = "ready"
        var exchange = HTTPCheckExchange(check: check, host: "h")
        #expect(exchange.judge(bytes("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nstarting"), ended: false) == .fail("body mismatch"))
        // Without a length, the close decides.
        #expect(exchange.judge(bytes("HTTP/1.1 200 OK\r\n\r\nstarting"), ended: false) == .more)
        #expect(exchange.judge(bytes("HTTP/1.1 200 OK\r\n\r\nstarting"), ended: true) == .fail("body mismatch"))
    }

    @Test func http_withExpectBody_readsAChunkedBodyAcrossChunks() {
        var check = HTTPCheck()
        check.expectBody = "ready"
        var exchange = HTTPCheckExchange(check: check, host: "h")
        let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nrea\r\n2;x=y\r\ndy\r\n0\r\n\r\n"
        #expect(exchange.judge(bytes(answer), ended: false) == .pass("status 200"))
        let without = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwait\r\n0\r\n\r\n"
        #expect(exchange.judge(bytes(without), ended: false) == .fail("body mismatch"))
    }

    @Test func http_whenTheStatusIsBadTheBodyIsNotLookedAt() {
        var check = HTTPCheck()
        check.expectBody = "ok"
        var exchange = HTTPCheckExchange(check: check, host: "h")
        #expect(exchange.judge(bytes("HTTP/1.1 500 Oops\r\n\r\nok"), ended: false) == .fail("status 500"))
    }

    @Test func http_whenTheAnswerIsNotHTTP_failsAsUnexpected() {
        var exchange = HTTPCheckExchange(check: HTTPCheck(), host: "h")
        #expect(exchange.judge(bytes("SSH-2.0-OpenSSH_9.2\r\n"), ended: false) == .fail("unexpected answer"))
        #expect(exchange.judge(bytes(""), ended: true) == .fail("closed without an answer"))
        #expect(exchange.judge(bytes("HTTP/1.1 2"), ended: true) == .fail("unexpected answer"))
    }

    // MARK: send-expect and tcp

    @Test func sendExpect_passesOnAPrefix_failsOnTheFirstDifferentByte() {
        var exchange = SendExpectExchange(send: Array("HELLO\r\n".utf8), expect: Array("OK".utf8))
        #expect(exchange.request == Array("HELLO\r\n".utf8))
        #expect(exchange.judge(bytes(""), ended: false) == .more)
        #expect(exchange.judge(bytes("O"), ended: false) == .more)
        #expect(exchange.judge(bytes("OK ready\r\n"), ended: false) == .pass("check passed"))
        #expect(exchange.judge(bytes("NO"), ended: false) == .fail("unexpected answer"))
        #expect(exchange.judge(bytes("O"), ended: true) == .fail("unexpected answer"))
        #expect(exchange.judge(bytes(""), ended: true) == .fail("closed without an answer"))
    }

    @Test func sendExpect_withNothingToExpect_passesOnceSent_likeTCP() {
        var send = SendExpectExchange(send: [1, 2], expect: [])
        #expect(send.judge(bytes(""), ended: false) == .pass("check passed"))
        var tcp = HealthCheckExchange.make(.tcp, host: "h", random: [])
        #expect(tcp.request.isEmpty)
        #expect(tcp.judge(bytes(""), ended: false) == .pass("check passed"))
    }

    @Test func sendExpect_withABinaryBanner_matchesBytes() {
        var exchange = SendExpectExchange(send: [], expect: [0x00, 0xff, 0x0a])
        #expect(exchange.judge([0x00, 0xff, 0x0a, 0x33][...], ended: false) == .pass("check passed"))
        #expect(exchange.judge([0x00, 0xfe][...], ended: false) == .fail("unexpected answer"))
    }

    // MARK: redis

    @Test func redis_sendsPING_andPassesOnPONG() {
        var exchange = RedisCheckExchange()
        #expect(exchange.request == Array("*1\r\n$4\r\nPING\r\n".utf8))
        #expect(judgeByteByByte(&exchange, Array("+PONG\r\n".utf8)) == .pass("+PONG"))
    }

    @Test func redis_whenAReplicaIsLoading_failsWithTheServersError() {
        var exchange = RedisCheckExchange()
        let answer = "-LOADING Redis is loading the dataset in memory\r\n"
        #expect(exchange.judge(bytes(answer), ended: false) == .fail("-LOADING Redis is loading the dataset in memory"))
    }

    @Test func redis_whenTheAnswerIsAnythingElse_fails() {
        var exchange = RedisCheckExchange()
        #expect(exchange.judge(bytes("+OK\r\n"), ended: false) == .fail("unexpected answer"))
        #expect(exchange.judge(bytes("+PON"), ended: true) == .fail("unexpected answer"))
    }

    // MARK: postgres

    private func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        [UInt8(type.asciiValue!)] + PostgresCheckExchange.bigEndian32(body.count + 4) + body
    }

    private func errorResponse(code: String, message text: String) -> [UInt8] {
        var body: [UInt8] = []
        for (field, value) in [("S", "FATAL"), ("V", "FATAL"), ("C", code), ("M", text), ("F", "postmaster.c")] {
            body += [UInt8(Character(field).asciiValue!)] + Array(value.utf8) + [0]
        }
        return message("E", body + [0])
    }

    @Test func postgres_startsWithAnSSLRequest_thenAStartupPacketOnTheSameConnectionAfterN() {
        var exchange = PostgresCheckExchange()
        #expect(exchange.request == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        #expect(exchange.judge(bytes(""), ended: false) == .more)
        let startup = PostgresCheckExchange.startupPacket
        #expect(exchange.judge(bytes("N"), ended: false) == .send(startup))
        #expect(Array(startup[4..<8]) == [0, 3, 0, 0])  // protocol 3.0
        #expect(Int(startup[3]) == startup.count)
        #expect(startup.last == 0)
        #expect(String(decoding: startup, as: UTF8.self).contains("user\u{0}balancerd\u{0}"))
    }

    @Test func postgres_afterS_sendsTheStartupPacketOnANewConnection() {
        var exchange = PostgresCheckExchange()
        #expect(exchange.judge(bytes("S"), ended: false) == .reconnect(PostgresCheckExchange.startupPacket))
    }

    @Test func postgres_whenTheServerAsksForAuthentication_passes() {
        var exchange = PostgresCheckExchange()
        _ = exchange.judge(bytes("N"), ended: false)
        // AuthenticationSASL, then its mechanism list.
        let sasl = message("R", [0, 0, 0, 10] + Array("SCRAM-SHA-256".utf8) + [0, 0])
        #expect(judgeByteByByte(&exchange, sasl) == .pass("accepts connections"))
    }

    @Test func postgres_whenTheServerIsShuttingDown_failsWithItsMessage() {
        var exchange = PostgresCheckExchange()
        _ = exchange.judge(bytes("N"), ended: false)
        let answer = errorResponse(code: "57P03", message: "the database system is shutting down")
        #expect(judgeByteByByte(&exchange, answer) == .fail("the database system is shutting down"))
    }

    @Test(arguments: ["the database system is starting up", "the database system is in recovery mode",
                      "the database system is not yet accepting connections"])
    func postgres_whenTheServerCannotAcceptConnectionsNow_fails(text: String) {
        var exchange = PostgresCheckExchange()
        _ = exchange.judge(bytes("N"), ended: false)
        #expect(exchange.judge(errorResponse(code: "57P03", message: text)[...], ended: false) == .fail(text))
        // The words alone are enough, for a server that sends no SQLSTATE.
        var other = PostgresCheckExchange()
        _ = other.judge(bytes("N"), ended: false)
        #expect(other.judge(errorResponse(code: "XX000", message: text)[...], ended: false) == .fail(text))
    }

    @Test func postgres_whenTheRoleIsUnknown_theServerIsUpAndPasses() {
        var exchange = PostgresCheckExchange()
        _ = exchange.judge(bytes("N"), ended: false)
        let answer = errorResponse(code: "28000", message: "role \"balancerd\" does not exist")
        #expect(exchange.judge(answer[...], ended: false) == .pass("accepts connections"))
    }

    @Test func postgres_whenTheServerRefusesBeforeTheSSLAnswer_judgesTheError() {
        var exchange = PostgresCheckExchange()
        let answer = errorResponse(code: "57P03", message: "the database system is shutting down")
        #expect(exchange.judge(answer[...], ended: false) == .fail("the database system is shutting down"))
    }

    @Test func postgres_whenTheAnswerIsNotPostgres_fails() {
        var exchange = PostgresCheckExchange()
        #expect(exchange.judge(bytes("HTTP/1.1 400"), ended: false) == .fail("unexpected answer"))
        var cut = PostgresCheckExchange()
        _ = cut.judge(bytes("N"), ended: false)
        #expect(cut.judge(errorResponse(code: "57P03", message: "x").prefix(9), ended: true) == .fail("unexpected answer"))
        var silent = PostgresCheckExchange()
        #expect(silent.judge(bytes(""), ended: true) == .fail("closed without an answer"))
    }

    // MARK: mysql

    private func packet(_ payload: [UInt8]) -> [UInt8] {
        [UInt8(payload.count & 0xff), UInt8(payload.count >> 8 & 0xff), UInt8(payload.count >> 16), 0] + payload
    }

    @Test func mysql_whenTheGreetingIsProtocol10_passesWithTheVersion() {
        var exchange = MySQLCheckExchange()
        #expect(exchange.request.isEmpty)
        let greeting = packet([0x0a] + Array("8.0.36".utf8) + [0] + [1, 0, 0, 0] + Array(repeating: 0x41, count: 8) + [0])
        #expect(judgeByteByByte(&exchange, greeting) == .pass("mysql 8.0.36"))
    }

    @Test func mysql_whenTheServerSendsAnErrorPacket_failsWithItsMessage() {
        var exchange = MySQLCheckExchange()
        let error = packet([0xff, 0x10, 0x04] + Array("#08004Too many connections".utf8))
        #expect(exchange.judge(error[...], ended: false) == .fail("Too many connections"))
    }

    @Test func mysql_whenTheGreetingIsAnotherProtocol_fails() {
        var exchange = MySQLCheckExchange()
        #expect(exchange.judge(packet([0x09] + Array("4.0".utf8) + [0])[...], ended: false) == .fail("unexpected answer"))
        #expect(exchange.judge(bytes("+PONG\r\n"), ended: false) == .fail("unexpected answer"))
    }

    // MARK: tls

    private let random = Array(0..<64).map { UInt8($0) }

    @Test func tls_clientHello_isAHandshakeRecordWithTheServerName() {
        let hello = TLSCheckExchange(serverName: "shop.example.com", random: random).request
        #expect(Array(hello.prefix(3)) == [0x16, 0x03, 0x01])
        #expect(Int(hello[3]) << 8 | Int(hello[4]) == hello.count - 5)
        #expect(hello[5] == 0x01)  // ClientHello
        #expect(Int(hello[6]) << 16 | Int(hello[7]) << 8 | Int(hello[8]) == hello.count - 9)
        #expect(Array(hello[11..<43]) == Array(random[0..<32]))
        #expect(hello.contains(Array("shop.example.com".utf8)))
        #expect(hello.contains([0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]))  // TLS 1.3 and 1.2
        #expect(hello.contains(Array(random[32..<64])))  // the key share

        let anonymous = TLSCheckExchange(serverName: nil, random: random).request
        #expect(anonymous.count == hello.count - (9 + "shop.example.com".utf8.count))
    }

    @Test func tls_whenAServerHelloComes_passes() {
        var exchange = TLSCheckExchange(serverName: nil, random: random)
        let serverHello: [UInt8] = [0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76, 0x03, 0x03]
        #expect(judgeByteByByte(&exchange, serverHello, endsWithClose: false) == .pass("server hello"))
    }

    @Test func tls_whenTheServerAnswersWithAnAlert_failsWithItsName() {
        var exchange = TLSCheckExchange(serverName: "unknown.example", random: random)
        #expect(exchange.judge([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70][...], ended: false) == .fail("tls alert unrecognized_name"))
        #expect(exchange.judge([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28][...], ended: false) == .fail("tls alert handshake_failure"))
    }

    @Test func tls_whenTheServerSpeaksPlainText_failsAtTheFirstByte() {
        var exchange = TLSCheckExchange(serverName: nil, random: random)
        #expect(exchange.judge(bytes("H"), ended: false) == .fail("unexpected answer (not TLS)"))
        #expect(exchange.judge(bytes(""), ended: true) == .fail("closed without an answer"))
    }

    // MARK: values of the configuration

    @Test func checkText_readsEscapesAndHex() {
        #expect(HealthCheckText.escaped("HELLO\\r\\n") == .success(Array("HELLO\r\n".utf8)))
        #expect(HealthCheckText.escaped("a\\x00\\\\b\\t") == .success([0x61, 0x00, 0x5c, 0x62, 0x09]))
        #expect((try? HealthCheckText.escaped("bad\\q").get()) == nil)
        #expect((try? HealthCheckText.escaped("end\\").get()) == nil)
        #expect((try? HealthCheckText.escaped("\\x4").get()) == nil)
        #expect(HealthCheckText.hex("2a0D0a") == .success([0x2a, 0x0d, 0x0a]))
        #expect(HealthCheckText.hex("2a 0d 0a") == .success([0x2a, 0x0d, 0x0a]))
        for bad in ["2a0", "zz", "", "0x2a"] { #expect((try? HealthCheckText.hex(bad).get()) == nil) }
    }

    @Test func checkText_readsStatusesAndRanges() {
        #expect(HealthCheckText.statusRange("200") == .success(200...200))
        #expect(HealthCheckText.statusRange("200-299") == .success(200...299))
        for bad in ["299-200", "99", "600", "2xx", "200-", "-", "1-2-3"] {
            #expect((try? HealthCheckText.statusRange(bad).get()) == nil, "\(bad)")
        }
    }

    @Test func durationHistogram_countsEachCheckInItsBucket_cumulatively() {
        var histogram = CheckDurationHistogram()
        histogram.record(0.0002)
        histogram.record(0.003)
        histogram.record(20)
        let cumulative = histogram.cumulative
        #expect(cumulative.count == CheckDurationHistogram.bounds.count + 1)
        #expect(cumulative.first == 1)  // ≤ 0.5 ms
        #expect(cumulative[CheckDurationHistogram.bounds.firstIndex(of: 0.005)!] == 2)
        #expect(cumulative[CheckDurationHistogram.bounds.count - 1] == 2)  // ≤ 10 s
        #expect(cumulative.last == 3)
        #expect(histogram.count == 3)
        #expect(abs(histogram.sum - 20.0032) < 1e-9)
    }
}
