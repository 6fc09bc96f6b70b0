import Foundation
import Testing
@testable import BalancerCore

/// Reading the server name from a TLS ClientHello, as it arrives.
@Suite struct ClientHelloTests {
    /// The first bytes OpenSSL 3.0's s_client sends with -servername Shop.Example.com.
    private let openssl = hexBytes("160301013d010001390303cfeb9895e1cb3691e275dd64809be3b2ee72ca991f27c2f48601ac122ba01d65204c2df197a6639c1ab58ff4bf7dae8ce1b204aaf478f5f4a52f1a64cfbab1deab003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000b200000015001300001053686f702e4578616d706c652e636f6d000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00206bff07979b25c7b20a795fa4df1d972e0ae88cd32c43d29ea1dc156c856dab55")

    private static func hexBytes(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    private func outcomes(_ chunks: [[UInt8]]) -> [ClientHello.Outcome] {
        var hello = ClientHello()
        return chunks.map { chunk in chunk.withUnsafeBytes { hello.feed($0) } }
    }

    /// A ClientHello with `name` (or none), split into records of at most `recordSize` bytes.
    private func hello(name: String?, recordSize: Int = 16_384, padding: Int = 0) -> [UInt8] {
        var extensions: [(type: Int, body: [UInt8])] = []
        if let name { extensions.append(serverName([(0, name)])) }
        if padding > 0 { extensions.append((21, [UInt8](repeating: 0, count: padding))) }
        return hello(extensions: extensions, recordSize: recordSize)
    }

    /// A ClientHello with these cipher suites and extensions, in this order.
    private func hello(suites: [Int] = [0x1301], extensions: [(type: Int, body: [UInt8])], recordSize: Int = 16_384) -> [UInt8] {
        let encoded = extensions.flatMap { be16($0.type) + be16($0.body.count) + $0.body }
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + be16(2 * suites.count) + suites.flatMap(be16) + [1, 0]
        body += be16(encoded.count) + encoded
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

    /// A server_name extension with these (name type, name) entries.
    private func serverName(_ entries: [(UInt8, String)]) -> (type: Int, body: [UInt8]) {
        let list = entries.flatMap { kind, name in [kind] + be16(name.utf8.count) + Array(name.utf8) }
        return (0, be16(list.count) + list)
    }

    private func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

    @Test func opensslsHello_givesItsServerName_lowerCased() {
        #expect(outcomes([openssl]) == [.found("shop.example.com")])
    }

    @Test func helloArrivingByteByByte_needsMoreUntilWhole() {
        let seen = outcomes(openssl.map { [$0] })
        #expect(seen.last == .found("shop.example.com"))
        #expect(seen.dropLast().allSatisfy { $0 == .needMore })
    }

    @Test func helloSpanningSeveralRecords_isReassembled() {
        let bytes = hello(name: "api.example.com", recordSize: 20, padding: 3000)
        #expect(outcomes([Array(bytes.prefix(100)), Array(bytes.dropFirst(100))]) == [.needMore, .found("api.example.com")])
    }

    @Test func helloWithoutServerName_isFoundWithNoName() {
        #expect(outcomes([hello(name: nil)]) == [.found(nil)])
    }

    @Test func notTLS_garbage_andOversizedHellos_areTold() {
        #expect(outcomes([Array("GET / HTTP/1.1\r\n".utf8)]) == [.notTLS])
        #expect(outcomes([[22, 2]]) == [.notTLS])
        #expect(outcomes([[23, 3, 3, 0, 5]]) == [.notTLS])
        // A handshake that is not a ClientHello.
        #expect(outcomes([[22, 3, 3, 0, 4, 2, 0, 0, 0]]) == [.notTLS])
        // Over 16 KiB of records before the hello is whole.
        let big = hello(name: "x.example.com", recordSize: 1000, padding: 17_000)
        #expect(outcomes([big]) == [.notTLS])
        // A name list that claims more than it has.
        var broken = hello(name: "a.example.com")
        broken[broken.count - 15] = 0xff
        #expect(outcomes([broken]).first != .needMore)
    }

    @Test func greaseCipherSuitesAndExtensions_arePassedOver() {
        // GREASE values (0x?a?a, RFC 8701) are what a client sends to keep servers from
        // choking on values they do not know: the reader must read past them.
        let grease = hello(suites: [0x0a0a, 0x1301, 0xfafa],
                           extensions: [(0x2a2a, []), (0x4a4a, [0]), serverName([(0, "grease.example.com")]), (0xdada, [0])])
        #expect(outcomes([grease]) == [.found("grease.example.com")])
        #expect(outcomes([hello(suites: [0x8a8a], extensions: [(0x1a1a, []), (0xeaea, [0])])]) == [.found(nil)])
    }

    @Test func extensionsInAnyOrder_giveTheSameName() {
        // As Chromium shuffles them in every hello.
        let others: [(type: Int, body: [UInt8])] = [(43, [2, 3, 4]), (51, be16(4) + [0, 29, 0, 0]), (16, be16(3) + [2] + Array("h2".utf8)),
                                                    (0x3a3a, []), (21, [0, 0, 0])]
        for position in 0...others.count {
            for rotation in 0..<others.count {
                var extensions = Array(others[rotation...] + others[..<rotation])
                extensions.insert(serverName([(0, "order.example.com")]), at: position)
                #expect(outcomes([hello(extensions: extensions)]) == [.found("order.example.com")], "at \(position), rotated \(rotation)")
                #expect(outcomes([hello(extensions: extensions.reversed())]) == [.found("order.example.com")])
            }
        }
    }

    @Test func severalServerNameEntries_theFirstHostNameCounts() {
        // Only name type 0 (host_name) is defined; an entry of another type is passed over.
        #expect(outcomes([hello(extensions: [serverName([(1, "not-a-host"), (0, "Host.Example.com")])])]) == [.found("host.example.com")])
        #expect(outcomes([hello(extensions: [serverName([(0, "first.example.com"), (0, "second.example.com")])])]) == [.found("first.example.com")])
        #expect(outcomes([hello(extensions: [serverName([(7, "not-a-host")])])]) == [.found(nil)])
    }

    @Test func helloOverSeveralRecords_fedByteByByte_isFoundAtItsLastByte() {
        let bytes = hello(name: "split.example.com", recordSize: 7, padding: 200)
        let seen = outcomes(bytes.map { [$0] })
        #expect(seen.last == .found("split.example.com"))
        #expect(seen.dropLast().allSatisfy { $0 == .needMore })
    }

    /// Chromium's hello, from scripts/capture-client-hello.py: GREASE suites and extensions,
    /// extensions in a random order, an encrypted_client_hello GREASE extension, and a
    /// post-quantum key share that makes it larger than one TCP segment on many paths.
    @Test func chromiumsHello_givesItsServerName_wholeAndByteByByte() throws {
        let file = FuzzCorpusTests.fuzzDirectory.appendingPathComponent("corpus/client-hello/chromium.bin")
        let chromium = Array(try Data(contentsOf: file))
        // The capture is what it is said to be: its first cipher suite is a GREASE value.
        let suites = 5 + 4 + 2 + 32 + 1 + Int(chromium[5 + 4 + 2 + 32]) + 2
        #expect(chromium[suites] & 0x0f == 0x0a && chromium[suites] == chromium[suites + 1])
        #expect(outcomes([chromium]) == [.found("chromium.bench.test")])
        let seen = outcomes(chromium.map { [$0] })
        #expect(seen.last == .found("chromium.bench.test"))
        #expect(seen.dropLast().allSatisfy { $0 == .needMore })
    }
}
