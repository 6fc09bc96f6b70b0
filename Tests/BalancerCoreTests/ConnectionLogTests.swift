import Foundation
import Testing
@testable import BalancerCore

/// The connection log's pure parts: the line for a record, the buffer's drop rule, the
/// `end` names, the configuration keys.
@Suite struct ConnectionLogTests {
    static let web = SocketAddress(family: .ipv4, host: "127.0.0.1", port: 30080)

    /// 2026-11-27T10:00:00.123Z
    static let start = 1_795_773_600.123_4

    static func served(end: CloseReason = .completed(closedFirst: .downstream)) -> ConnectionRecord {
        ConnectionRecord(start: start, durationMs: 1500, client: PeerAddress(SocketAddress(family: .ipv4, host: "10.1.2.3", port: 51234)),
                         listen: web, service: "web", endpoint: SocketAddress(family: .ipv4, host: "127.0.0.1", port: 8081),
                         attempts: 2, queueMs: 7, connectMs: 3, bytesIn: 518, bytesOut: 1_048_576, end: end, worker: 1)
    }

    static func unserved() -> ConnectionRecord {
        ConnectionRecord(start: start, durationMs: 0, client: nil, listen: web, service: "web", endpoint: nil,
                         attempts: 0, queueMs: 0, connectMs: nil, bytesIn: 0, bytesOut: 0, end: .noHealthyEndpoint, worker: 0)
    }

    @Test func json_hasExactlyTheContractsKeysInOrder_withTypedValues() throws {
        let line = ConnectionLogFormat.line(Self.served(), as: .json)
        #expect(line == #"{"time":"2026-11-27T10:00:00.123Z","durationMs":1500,"client":"10.1.2.3:51234","listen":"127.0.0.1:30080","service":"web","endpoint":"127.0.0.1:8081","attempts":2,"queueMs":7,"connectMs":3,"bytesIn":518,"bytesOut":1048576,"end":"client-closed","worker":1}"# + "\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["time", "durationMs", "client", "listen", "service", "endpoint", "attempts", "queueMs",
                                     "connectMs", "bytesIn", "bytesOut", "end", "worker"])
    }

    @Test func json_whenNothingWasServed_writesNulls() throws {
        let line = ConnectionLogFormat.line(Self.unserved(), as: .json)
        #expect(line.hasSuffix("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["client"] is NSNull)
        #expect(object["endpoint"] is NSNull)
        #expect(object["connectMs"] is NSNull)
        #expect(object["attempts"] as? Int == 0)
        #expect(object["end"] as? String == "no-endpoint")
    }

    @Test func text_isTheSameFieldsInOrder_withDashForNull() {
        #expect(ConnectionLogFormat.line(Self.served(), as: .text)
            == "2026-11-27T10:00:00.123Z 1500 10.1.2.3:51234 127.0.0.1:30080 web 127.0.0.1:8081 2 7 3 518 1048576 client-closed 1\n")
        #expect(ConnectionLogFormat.line(Self.unserved(), as: .text)
            == "2026-11-27T10:00:00.123Z 0 - 127.0.0.1:30080 web - 0 0 - 0 0 no-endpoint 0\n")
    }

    @Test func addresses_ipv6InBrackets() {
        var record = Self.served()
        record.client = PeerAddress(SocketAddress(family: .ipv6, host: "2001:db8::7", port: 443))
        record.endpoint = SocketAddress(family: .ipv6, host: "::1", port: 8081)
        let line = ConnectionLogFormat.line(record, as: .text)
        #expect(line.contains(" [2001:db8::7]:443 127.0.0.1:30080 web [::1]:8081 "))
    }

    @Test func time_isRFC3339UTCWithMilliseconds_atTheEdges() {
        var out: [UInt8] = []
        ConnectionLogFormat.appendTime(0, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "1970-01-01T00:00:00.000Z")
        out.removeAll()
        ConnectionLogFormat.appendTime(1_795_773_599.9996, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2026-11-27T09:59:59.999Z")
    }

    @Test func decimals_fromZeroToTheLargest() {
        for value: UInt64 in [0, 9, 10, 1234567890, .max] {
            var out: [UInt8] = []
            ConnectionLogFormat.appendDecimal(value, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(value))
        }
    }

    @Test func escaping_keepsAStrangeNameValidJSON() throws {
        var record = Self.served()
        record.service = "we\"b\\\n"
        let line = ConnectionLogFormat.line(record, as: .json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["service"] as? String == "we\"b\\\n")
    }

    @Test func end_namesEveryCloseReason() {
        let names: [(CloseReason, String)] = [
            (.completed(closedFirst: .downstream), "client-closed"), (.completed(closedFirst: .upstream), "endpoint-closed"),
            (.reset(.downstream), "client-reset"), (.reset(.upstream), "endpoint-reset"), (.idleTimeout, "idle-timeout"),
            (.connectFailed, "connect-failed"), (.noHealthyEndpoint, "no-endpoint"), (.overLimit, "over-limit"),
            (.queueFull, "queue-full"), (.queueTimeout, "queue-timeout"), (.globalLimit, "global-limit"),
            (.drainDeadline, "drain-deadline"), (.adminClose, "admin-close"),
        ]
        for (reason, name) in names { #expect(reason.logName == name) }
        #expect(names.filter { $0.0.isSampled }.map(\.1) == ["client-closed", "endpoint-closed"])
    }

    @Test func buffer_whenALineDoesNotFitWhole_dropsIt_andTakesLaterOnesThatFit() {
        var buffer = LineBuffer(capacity: 10)
        func add(_ text: String) -> Bool { buffer.append(Array(text.utf8)) }
        #expect(add("abcd\n"))
        #expect(!add("efghij\n"))  // 12 > 10: dropped, not split
        #expect(add("klmn\n"))     // exactly full
        #expect(!add("\n"))
        #expect(buffer.lines == 2)
        var batch: [UInt8] = []
        let handed = buffer.hand(over: &batch)
        #expect(handed == 2)
        #expect(String(decoding: batch, as: UTF8.self) == "abcd\nklmn\n")
        #expect(buffer.isEmpty && buffer.bytes.isEmpty)
        #expect(add("again\n"))
    }

    @Test func buffer_handOver_swapsStorageWithoutCopying() {
        var buffer = LineBuffer(capacity: 4096)
        _ = buffer.append(Array("line\n".utf8))
        var batch: [UInt8] = []
        batch.reserveCapacity(4096)
        let spare = batch.withUnsafeBufferPointer { $0.baseAddress }
        _ = buffer.hand(over: &batch)
        #expect(buffer.bytes.withUnsafeBufferPointer { $0.baseAddress } == spare)
    }

    @Test func config_accessLog_keysDefaultsAndErrors() throws {
        let base = "services:\n  - {name: web, listen: 127.0.0.1:30080, endpoints: [127.0.0.1:8081]}\n"
        #expect(try ConfigFixture.parse(base).accessLog == nil)
        let json = try ConfigFixture.parse("accessLog: {path: /var/log/balancerd/access.log}\n" + base).accessLog
        #expect(json == AccessLogConfig(path: "/var/log/balancerd/access.log", format: .json, sample: 1))
        let text = try ConfigFixture.parse("accessLog: {path: stderr, format: text, sample: 0.25}\n" + base).accessLog
        #expect(text == AccessLogConfig(path: "stderr", format: .text, sample: 0.25))
        let errors = ConfigFixture.errors("accessLog: {format: xml, sample: 2, color: true}\n" + base).map(\.description)
        #expect(errors.contains { $0.contains("accessLog.color: unknown key") })
        #expect(errors.contains { $0.contains("accessLog.format: 'xml' is not one of: json, text") })
        #expect(errors.contains { $0.contains("accessLog.path: missing") })
        #expect(errors.contains { $0.contains("accessLog.sample: '2' is not a share from 0 to 1") })
    }

    @Test func config_accessLog_relativePathIsBesideTheFile() throws {
        let config = try ConfigLoader.parse("accessLog: {path: access.log}\nservices:\n  - {name: web, listen: 127.0.0.1:30080, endpoints: [127.0.0.1:8081]}\n",
                                            path: "/etc/balancerd/balancerd.yaml")
        #expect(config.accessLog?.path == "/etc/balancerd/access.log")
    }
}
