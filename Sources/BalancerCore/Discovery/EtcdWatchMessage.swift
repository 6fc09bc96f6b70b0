import Foundation

/// One line of etcd's JSON-gateway watch stream, decoded. Keys and values arrive base64
/// encoded and int64 fields as JSON strings; a PUT event carries no `type` (the default
/// value is omitted).
enum EtcdWatchMessage: Equatable {
    struct Event: Equatable {
        var key: String
        /// nil for a delete.
        var value: String?
        var modRevision: Int?
    }

    /// The watch is in place (`created`) or reports progress or changes.
    case update(events: [Event], revision: Int?)
    /// etcd ended the watch; `compactRevision` is set when the revision asked was compacted.
    case cancelled(reason: String, compactRevision: Int?)
    /// An error object instead of a result (for instance when the member lost its leader).
    case error(String)
    /// A line that is not a watch message.
    case malformed

    init(line: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            self = .malformed
            return
        }
        if let error = object["error"] {
            self = .error(Self.errorText(error))
            return
        }
        guard let result = object["result"] as? [String: Any] else {
            self = .malformed
            return
        }
        if result["canceled"] as? Bool == true {
            self = .cancelled(reason: (result["cancel_reason"] as? String) ?? "cancelled", compactRevision: Self.int(result["compact_revision"]))
            return
        }
        var events: [Event] = []
        for event in (result["events"] as? [[String: Any]]) ?? [] {
            guard let kv = event["kv"] as? [String: Any], let key = Self.text(kv["key"]) else { continue }
            let isDelete = event["type"] as? String == "DELETE"
            events.append(Event(key: key, value: isDelete ? nil : (Self.text(kv["value"]) ?? ""), modRevision: Self.int(kv["mod_revision"])))
        }
        self = .update(events: events, revision: Self.int((result["header"] as? [String: Any])?["revision"]))
    }

    /// etcd's int64 fields arrive as JSON strings.
    static func int(_ value: Any?) -> Int? {
        if let text = value as? String { return Int(text) }
        return (value as? NSNumber)?.intValue
    }

    /// A base64 field as text.
    static func text(_ value: Any?) -> String? {
        guard let encoded = value as? String, let data = Data(base64Encoded: encoded) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The message of an error object (`{"error": {"message": …}}` or `{"error": "…"}`).
    static func errorText(_ error: Any) -> String {
        if let text = error as? String { return text }
        if let object = error as? [String: Any] {
            return (object["message"] as? String) ?? (object["error"] as? String) ?? "error"
        }
        return "error"
    }
}
