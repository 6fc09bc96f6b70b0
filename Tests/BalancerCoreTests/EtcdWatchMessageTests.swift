import Foundation
import Testing
@testable import BalancerCore

/// Lines of etcd 3.4's JSON-gateway watch stream.
@Suite struct EtcdWatchMessageTests {
    private func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    private func message(_ json: String) -> EtcdWatchMessage { EtcdWatchMessage(line: Array(json.utf8)) }

    @Test func created_isAnUpdateWithoutEvents() {
        #expect(message(#"{"result":{"header":{"cluster_id":"1","revision":"7"},"created":true}}"#) == .update(events: [], revision: 7))
    }

    @Test func putWithoutType_andDelete_areDecoded() {
        let line = #"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"\#(b64("/b/services/x"))","value":"\#(b64("{}"))","mod_revision":"8"}},{"type":"DELETE","kv":{"key":"\#(b64("/b/endpoints/x/1"))","mod_revision":"9"}}]}}"#
        #expect(message(line) == .update(events: [
            .init(key: "/b/services/x", value: "{}", modRevision: 8),
            .init(key: "/b/endpoints/x/1", value: nil, modRevision: 9),
        ], revision: 9))
    }

    @Test func cancelledByCompaction_carriesTheCompactRevision() {
        let line = #"{"result":{"header":{"revision":"20"},"canceled":true,"compact_revision":"15","cancel_reason":"mvcc: required revision has been compacted"}}"#
        #expect(message(line) == .cancelled(reason: "mvcc: required revision has been compacted", compactRevision: 15))
    }

    @Test func errorObjects_andGarbage_areTold() {
        #expect(message(#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#) == .error("etcdserver: no leader"))
        #expect(message("{\"result\":") == .malformed)
        #expect(message("[1,2]") == .malformed)
    }
}
