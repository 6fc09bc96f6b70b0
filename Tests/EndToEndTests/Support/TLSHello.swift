/// A minimal TLS 1.2/1.3 ClientHello, built byte by byte, for tests that route by server
/// name without a TLS library: balancerd reads only the record and handshake framing and
/// the server_name extension, and passes every byte on unchanged.
enum TLSHello {
    /// The hello naming `serverName` (none when nil), split into TLS records of at most
    /// `recordSize` bytes of handshake each.
    static func bytes(serverName: String?, recordSize: Int = 16_384) -> [UInt8] {
        var extensions: [UInt8] = []
        if let serverName {
            let host = Array(serverName.utf8)
            let entry: [UInt8] = [0] + be16(host.count) + host
            let list = be16(entry.count) + entry
            extensions += be16(0) + be16(list.count) + list
        }
        // A GREASE extension first, as browsers send: it must be skipped.
        extensions = be16(0x0a0a) + be16(0) + extensions
        var body: [UInt8] = [3, 3] + (0..<32).map { UInt8($0) } + [0] + be16(4) + [0x13, 0x01, 0x13, 0x02] + [1, 0]
        body += be16(extensions.count) + extensions
        let message: [UInt8] = [1, UInt8(body.count >> 16), UInt8((body.count >> 8) & 0xff), UInt8(body.count & 0xff)] + body
        var records: [UInt8] = []
        var offset = 0
        while offset < message.count {
            let piece = message[offset..<min(message.count, offset + recordSize)]
            records += [22, 3, 1] + be16(piece.count) + piece
            offset += piece.count
        }
        return records
    }

    private static func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
}
