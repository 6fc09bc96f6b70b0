/// Reads the server name out of the first bytes a TLS client sends, without terminating
/// TLS: a value fed the bytes as they arrive, which says when it has seen enough.
///
/// The ClientHello may span several TLS records and TCP segments; it is reassembled from
/// the handshake records (content type 22) up to `limit` bytes of records. Anything that
/// is not a TLS handshake starting with a ClientHello, or is malformed, or does not fit,
/// is `notTLS`. A hello without a server_name extension (or with no host_name entry) is
/// `.found(nil)`. Names are returned lower-cased, without a trailing dot.
public struct ClientHello: Sendable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        case found(String?)
        case notTLS
    }

    /// The ClientHello spans at most this many bytes of records (16 KiB, as the contract
    /// bounds it).
    public static let limit = 16 * 1024

    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// Adds what arrived and says what is known now.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer) -> Outcome {
        bytes.append(contentsOf: chunk)
        return Self.parse(bytes)
    }

    /// The outcome for everything read so far (`bytes`), which is also what goes to the
    /// endpoint unchanged.
    public static func parse(_ data: [UInt8]) -> Outcome {
        // Reassemble the handshake bytes from the records present so far.
        var handshake: [UInt8] = []
        var offset = 0
        while offset + 5 <= data.count {
            guard data[offset] == 22, data[offset + 1] == 3 else { return .notTLS }
            let length = Int(data[offset + 3]) << 8 | Int(data[offset + 4])
            guard length > 0, length <= 16 * 1024 + 2048 else { return .notTLS }
            let end = offset + 5 + length
            if end > data.count {
                handshake += data[(offset + 5)...]
                offset = data.count
                break
            }
            handshake += data[(offset + 5)..<end]
            offset = end
            if let outcome = parseHandshake(handshake), outcome != .needMore { return outcome }
        }
        if data.count > limit { return .notTLS }
        if offset < data.count, data.count - offset < 5 {
            // A partial record header: its first bytes must already look like TLS.
            if data[offset] != 22 || (data.count - offset > 1 && data[offset + 1] != 3) { return .notTLS }
        }
        return parseHandshake(handshake) ?? .needMore
    }

    /// nil while the ClientHello message is not whole yet.
    private static func parseHandshake(_ message: [UInt8]) -> Outcome? {
        guard message.count >= 4 else {
            if let first = message.first, first != 1 { return .notTLS }
            return nil
        }
        guard message[0] == 1 else { return .notTLS }
        let length = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
        guard length <= limit else { return .notTLS }
        guard message.count >= 4 + length else { return nil }
        var reader = Reader(message[4..<(4 + length)])
        // legacy_version, random
        guard reader.skip(2 + 32),
              let sessionLength = reader.byte(), reader.skip(Int(sessionLength)),
              let suitesLength = reader.uint16(), suitesLength % 2 == 0, reader.skip(suitesLength),
              let compressionLength = reader.byte(), reader.skip(Int(compressionLength)) else { return .notTLS }
        // No extensions at all: no server name.
        guard reader.remaining > 0 else { return .found(nil) }
        guard let extensionsLength = reader.uint16(), extensionsLength <= reader.remaining else { return .notTLS }
        var extensions = Reader(reader.take(extensionsLength))
        while extensions.remaining > 0 {
            guard let type = extensions.uint16(), let size = extensions.uint16(), size <= extensions.remaining else { return .notTLS }
            let body = extensions.take(size)
            guard type == 0 else { continue }  // server_name
            var names = Reader(body)
            guard let listLength = names.uint16(), listLength <= names.remaining else { return .notTLS }
            var list = Reader(names.take(listLength))
            while list.remaining > 0 {
                guard let kind = list.byte(), let nameLength = list.uint16(), nameLength <= list.remaining else { return .notTLS }
                let name = list.take(nameLength)
                if kind == 0 {
                    guard !name.isEmpty, name.allSatisfy({ $0 > 32 && $0 < 127 }) else { return .notTLS }
                    return .found(ServerNameTable<Int>.normalized(String(decoding: name, as: UTF8.self)))
                }
            }
            return .found(nil)
        }
        return .found(nil)
    }

    /// Big-endian reads over a slice, failing (nil) rather than reading past its end.
    private struct Reader {
        private let data: ArraySlice<UInt8>
        private var position: Int

        init(_ data: ArraySlice<UInt8>) {
            self.data = data
            position = data.startIndex
        }

        var remaining: Int { data.endIndex - position }

        mutating func byte() -> UInt8? {
            guard remaining >= 1 else { return nil }
            defer { position += 1 }
            return data[position]
        }

        mutating func uint16() -> Int? {
            guard remaining >= 2 else { return nil }
            defer { position += 2 }
            return Int(data[position]) << 8 | Int(data[position + 1])
        }

        mutating func skip(_ count: Int) -> Bool {
            guard count >= 0, remaining >= count else { return false }
            position += count
            return true
        }

        /// The next `count` bytes (fewer if the slice ends first).
        mutating func take(_ count: Int) -> ArraySlice<UInt8> {
            let end = min(data.endIndex, position + count)
            defer { position = end }
            return data[position..<end]
        }
    }
}
