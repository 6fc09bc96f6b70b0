import Foundation
import Testing
import BalancerCore

/// Replays the fuzzers' seed corpus and every crash they ever found (Fuzz/), so that a crash
/// once fixed stays fixed.
@Suite struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    private func inputs(_ target: String) throws -> [URL] {
        let fm = FileManager.default
        let corpus = try fm.contentsOfDirectory(at: Self.fuzzDirectory.appendingPathComponent("corpus/\(target)"), includingPropertiesForKeys: nil)
        let crashes = (try? fm.contentsOfDirectory(at: Self.fuzzDirectory.appendingPathComponent("crashes"), includingPropertiesForKeys: nil)) ?? []
        return corpus + crashes.filter { $0.lastPathComponent.hasPrefix("\(target)-") }
    }

    @Test func configCorpus_parsesOrFailsCleanly() throws {
        let files = try inputs("config")
        #expect(files.count >= 5)
        var valid = 0
        for file in files {
            let text = String(decoding: try Data(contentsOf: file), as: UTF8.self)
            if (try? ConfigLoader.parse(text, path: file.lastPathComponent)) != nil { valid += 1 }
        }
        #expect(valid >= 3)
    }

    @Test func adminRequestCorpus_parsesOrFailsCleanly() throws {
        let files = try inputs("admin-request")
        #expect(files.count >= 5)
        for file in files {
            let bytes = Array(try Data(contentsOf: file).dropFirst())
            let parser = AdminRequestParser()
            var rest = bytes[...]
            while !rest.isEmpty {
                let outcome = Array(rest).withUnsafeBytes { parser.feed($0) }
                guard case .request(_, let consumed) = outcome else { break }
                rest = rest.dropFirst(consumed)
                parser.reset()
            }
        }
    }

    @Test func clientHelloCorpus_givesANameOrNotTLS_wholeOrSplit() throws {
        let files = try inputs("client-hello")
        #expect(files.count >= 5)
        var named = 0
        for file in files {
            let bytes = Array(try Data(contentsOf: file))
            let whole = ClientHello.parse(bytes)
            if case .found(let name) = whole, name != nil { named += 1 }
            // Byte by byte, the answer is the same.
            var hello = ClientHello()
            var outcome = ClientHello.Outcome.needMore
            for byte in bytes where outcome == .needMore { outcome = [byte].withUnsafeBytes { hello.feed($0) } }
            #expect(outcome == whole, "\(file.lastPathComponent)")
        }
        // The real clients' hellos (openssl, curl, Python) name a server.
        #expect(named >= 3)
    }
}
