import Foundation
import Glibc
import Testing

/// Several services behind one port, chosen by the TLS server name (passthrough).
@Suite struct SNIEndToEndTests {
    /// shop, api and (with `fallback`) other, on one address; each backend greets with its
    /// name and then echoes, so a test sees which service took it and what reached it.
    private func shared(port: UInt16, admin: UInt16, shop: BackendProcess, api: BackendProcess, other: BackendProcess?,
                        helloTimeout: String = "5s") -> String {
        var text = """
        admin: {listen: 127.0.0.1:\(admin)}
        defaults: {helloTimeout: \(helloTimeout)}
        services:
          - {name: shop, listen: 127.0.0.1:\(port), serverNames: [shop.example.com, "*.shop.example.com"], endpoints: [\(shop.address)]}
          - {name: api, listen: 127.0.0.1:\(port), serverNames: [API.example.com.], endpoints: [\(api.address)]}

        """
        if let other { text += "  - {name: other, listen: 127.0.0.1:\(port), serverNames: [\"*\"], endpoints: [\(other.address)]}\n" }
        return text
    }

    private func listenerFigures(_ admin: UInt16) -> [String: Any] {
        (((try? HTTPClient.stats(adminPort: admin))?["listeners"] as? [[String: Any]])?.first) ?? [:]
    }

    /// Sends `hello` in `chunks`-sized pieces, returns the backend's greeting and what it
    /// echoed of the hello.
    private func route(_ port: UInt16, _ hello: [UInt8], chunk: Int = 1 << 20) throws -> (String, [UInt8]) {
        let client = try TestClient(port: port)
        var offset = 0
        while offset < hello.count {
            try client.send(Array(hello[offset..<min(hello.count, offset + chunk)]))
            offset += chunk
            if chunk < 16 { usleep(2_000) }
        }
        let name = try client.readLine()
        var echoed: [UInt8] = []
        while echoed.count < hello.count { echoed += try client.readChunk() }
        return (name, echoed)
    }

    @Test func serverName_picksExactThenLongestSuffixThenStar_andTheHelloArrivesUnchanged() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api"), other = try BackendProcess(name: "other")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: other))
        for (name, expected) in [("shop.example.com", "shop"), ("a.b.Shop.Example.com", "shop"), ("api.example.com.", "api"),
                                 ("example.com", "other"), ("www.api.example.com", "other")] {
            let hello = TLSHello.bytes(serverName: name)
            let (greeting, echoed) = try route(port, hello)
            #expect(greeting == expected, "\(name)")
            #expect(echoed == hello, "the ClientHello reaches the endpoint unchanged and first")
        }
        withExtendedLifetime(daemon) {}
    }

    @Test func hello_byteByByte_andSplitOverRecords_isStillRouted() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: nil))
        let slow = TLSHello.bytes(serverName: "api.example.com")
        #expect(try route(port, slow, chunk: 1).0 == "api")
        let split = TLSHello.bytes(serverName: "shop.example.com", recordSize: 40)
        let (greeting, echoed) = try route(port, split)
        #expect(greeting == "shop")
        #expect(echoed == split)
        withExtendedLifetime(daemon) {}
    }

    @Test func noServerName_goesToStar_orIsClosedAndCountedWithoutOne() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api"), other = try BackendProcess(name: "other")
        let withStar = Harness.freePort(), without = Harness.freePort()
        let adminA = Harness.freePort(), adminB = Harness.freePort()
        let a = try DaemonProcess(config: shared(port: withStar, admin: adminA, shop: shop, api: api, other: other))
        let b = try DaemonProcess(config: shared(port: without, admin: adminB, shop: shop, api: api, other: nil))
        #expect(try route(withStar, TLSHello.bytes(serverName: nil)).0 == "other")
        for hello in [TLSHello.bytes(serverName: nil), TLSHello.bytes(serverName: "nobody.test")] {
            let client = try TestClient(port: without)
            try client.send(hello)
            #expect(client.waitForClose() != nil)
        }
        #expect(Harness.waitUntil(timeout: 2) { listenerFigures(adminB)["unmatched"] as? Int == 2 })
        #expect(listenerFigures(adminB)["listen"] as? String == "127.0.0.1:\(without)")
        let metrics = try HTTPClient.get(port: adminB, path: "/metrics").body
        #expect(metrics.contains("balancerd_listener_closed_total{listen=\"127.0.0.1:\(without)\",reason=\"unmatched\"} 2"))
        withExtendedLifetime((a, b)) {}
    }

    @Test func notTLS_andTooSlowHellos_areClosedAtOnce_countedAndNeverReachAnEndpoint() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api"), other = try BackendProcess(name: "other")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: other, helloTimeout: "300ms"))
        let plain = try TestClient(port: port)
        try plain.send("GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        #expect(plain.waitForClose() != nil)
        let slow = try TestClient(port: port, timeout: 3)
        try slow.send(Array(TLSHello.bytes(serverName: "shop.example.com").prefix(20)))
        #expect(slow.waitForClose() != nil)
        #expect(Harness.waitUntil(timeout: 2) { listenerFigures(admin)["notTLS"] as? Int == 1 && listenerFigures(admin)["timeouts"] as? Int == 1 })
        let services = ((try? HTTPClient.stats(adminPort: admin))?["services"] as? [[String: Any]]) ?? []
        #expect(services.allSatisfy { $0["totalConnections"] as? Int == 0 }, "nothing reached any service")
        // Served connections go on meanwhile.
        #expect(try route(port, TLSHello.bytes(serverName: "shop.example.com")).0 == "shop")
        withExtendedLifetime(daemon) {}
    }

    @Test func twentyMebibytes_afterTheHello_arriveIntact() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: nil))
        let hello = TLSHello.bytes(serverName: "shop.example.com")
        // A pattern that does not repeat within a pipe's worth, cheaper to make than random bytes.
        var bytes = hello
        bytes.reserveCapacity(hello.count + (20 << 20))
        var x: UInt32 = 2_463_534_242
        for _ in 0..<(20 << 20) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            bytes.append(UInt8(truncatingIfNeeded: x))
        }
        let payload = bytes
        let client = try TestClient(port: port, timeout: 20)
        // Write on another thread while this one reads: the echo needs both at once.
        let writer = Thread {
            try? client.send(payload)
            client.shutdownWrite()
        }
        writer.start()
        let received = try client.readToEnd()
        let greeting = Array("shop\n".utf8), trailer = Array("eof \(payload.count)\n".utf8)
        #expect(received.count == greeting.count + payload.count + trailer.count)
        #expect(Array(received.prefix(greeting.count)) == greeting)
        #expect(Array(received.dropFirst(greeting.count).prefix(payload.count)) == payload)
        withExtendedLifetime(daemon) {}
    }

    @Test func connectionLog_namesWhyAClientReachedNoService() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api")
        let port = Harness.freePort(), admin = Harness.freePort()
        let logPath = Harness.temporaryDirectory().appendingPathComponent("access.log").path
        let daemon = try DaemonProcess(config: "accessLog: {path: \(logPath)}\n" + shared(port: port, admin: admin, shop: shop, api: api, other: nil,
                                                                                          helloTimeout: "300ms"))
        let plain = try TestClient(port: port)
        try plain.send("GET / HTTP/1.1\r\n\r\n")
        _ = plain.waitForClose()
        let unknown = try TestClient(port: port)
        try unknown.send(TLSHello.bytes(serverName: "nobody.test"))
        _ = unknown.waitForClose()
        let slow = try TestClient(port: port, timeout: 3)
        try slow.send([22, 3])
        _ = slow.waitForClose()
        var ends: [String] = []
        #expect(Harness.waitUntil(timeout: 5) {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let records = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            ends = records.compactMap { $0["end"] as? String }
            return ends.count == 3 && records.allSatisfy { $0["service"] is NSNull && $0["endpoint"] is NSNull }
        })
        #expect(Set(ends) == ["not-tls", "unmatched", "hello-timeout"])
        withExtendedLifetime(daemon) {}
    }

    @Test func floodOfSlowHellos_dropsTheOldestPastTheBound_andServedClientsGoOn() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api")
        let port = Harness.freePort(), admin = Harness.freePort()
        // One worker: the bound (1,024 hellos being read) is per worker.
        let config = shared(port: port, admin: admin, shop: shop, api: api, other: nil).replacingOccurrences(of: "services:", with: "workers: 1\nservices:")
        let daemon = try DaemonProcess(config: config)
        let served = try TestClient(port: port)
        try served.send(TLSHello.bytes(serverName: "shop.example.com"))
        #expect(try served.readLine() == "shop")
        // 1,100 clients that send the first bytes of a hello and then nothing.
        let start = Array(TLSHello.bytes(serverName: "api.example.com").prefix(5))
        var slow: [TestClient] = []
        for _ in 0..<1100 {
            let client = try TestClient(port: port, timeout: 3)
            try client.send(start)
            slow.append(client)
        }
        #expect(Harness.waitUntil(timeout: 5) { listenerFigures(admin)["timeouts"] as? Int ?? 0 >= 76 })
        // The first ones were dropped, the last ones are still being waited for.
        #expect(slow[0].waitForClose() != nil)
        #expect(!slow[1099].isReadable(within: 0.2))
        // A new client is routed at once, and the one already served still echoes.
        #expect(try route(port, TLSHello.bytes(serverName: "api.example.com")).0 == "api")
        try served.send("still here\n")
        var echoed = ""
        #expect(Harness.waitUntil(timeout: 2) {
            echoed += String(decoding: (try? served.readChunk()) ?? [], as: UTF8.self)
            return echoed.contains("still here")
        })
        let services = ((try? HTTPClient.stats(adminPort: admin))?["services"] as? [[String: Any]]) ?? []
        #expect(services.first { $0["name"] as? String == "api" }?["totalConnections"] as? Int == 1, "no slow hello reached api")
        withExtendedLifetime((daemon, slow)) {}
    }

    @Test func reload_removingAServerName_closesNewHellosForIt_whileOthersAreNeverRefused() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: nil))
        #expect(try route(port, TLSHello.bytes(serverName: "api.example.com")).0 == "api")
        let onlyShop = """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - {name: shop, listen: 127.0.0.1:\(port), serverNames: [shop.example.com], endpoints: [\(shop.address)]}

        """
        try daemon.rewriteConfig(onlyShop)
        daemon.send(SIGHUP)
        // Clients of shop keep coming through the reload, none refused.
        var routed = 0
        let deadline = Date().addingTimeInterval(5)
        while !daemon.log.contains("reload (SIGHUP) complete") && Date() < deadline {
            #expect(try route(port, TLSHello.bytes(serverName: "shop.example.com")).0 == "shop")
            routed += 1
        }
        #expect(daemon.log.contains("reload (SIGHUP) complete"))
        #expect(try route(port, TLSHello.bytes(serverName: "shop.example.com")).0 == "shop")
        let gone = try TestClient(port: port)
        try gone.send(TLSHello.bytes(serverName: "api.example.com"))
        #expect(gone.waitForClose() != nil)
        #expect(Harness.waitUntil(timeout: 2) { listenerFigures(admin)["unmatched"] as? Int == 1 })
        withExtendedLifetime(daemon) {}
    }

    @Test func reload_addsAServerNameOnTheLiveSharedPort() throws {
        let shop = try BackendProcess(name: "shop"), api = try BackendProcess(name: "api"), other = try BackendProcess(name: "other")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: shared(port: port, admin: admin, shop: shop, api: api, other: nil))
        let open = try TestClient(port: port)
        try open.send(TLSHello.bytes(serverName: "api.example.com"))
        #expect(try open.readLine() == "api")
        try daemon.rewriteConfig(shared(port: port, admin: admin, shop: shop, api: api, other: other))
        daemon.send(SIGHUP)
        #expect(Harness.waitUntil(timeout: 3) { daemon.log.contains("reload (SIGHUP) complete") })
        #expect(try route(port, TLSHello.bytes(serverName: "new.test")).0 == "other")
        try open.send("still here\n")
        var echoed = ""
        #expect(Harness.waitUntil(timeout: 2) {
            echoed += String(decoding: (try? open.readChunk()) ?? [], as: UTF8.self)
            return echoed.contains("still here")
        })
        withExtendedLifetime(daemon) {}
    }
}

/// Real TLS through the SNI routing: nginx endpoints, each with its own self-signed
/// certificate made here with openssl; curl (which verifies the certificate against the one
/// it was given) proves which endpoint did the TLS.
@Suite struct SNIWithTLSEndToEndTests {
    /// An nginx serving HTTPS on 127.0.0.1:`port` with a certificate for `name`, answering
    /// every request with `name`.
    private final class TLSServer {
        let port = Harness.freePort()
        let directory = Harness.temporaryDirectory()
        let certificate: String
        private let pid: pid_t

        init(name: String) throws {
            certificate = directory.appendingPathComponent("cert.pem").path
            let key = directory.appendingPathComponent("key.pem").path
            _ = try Harness.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                                                                    "-days", "2", "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)"])
            let conf = directory.appendingPathComponent("nginx.conf").path
            try """
            worker_processes 1;
            master_process off;
            daemon off;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/error.log;
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path \(directory.path);
              server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(certificate);
                ssl_certificate_key \(key);
                location / { return 200 "\(name)"; }
              }
            }
            """.write(toFile: conf, atomically: true, encoding: .utf8)
            pid = try Harness.spawn("/usr/sbin/nginx", ["-p", directory.path, "-c", conf], standardError: directory.appendingPathComponent("stderr").path)
            let port = port
            guard Harness.waitUntil(timeout: 10, { (try? TestClient(port: port, timeout: 1)) != nil }) else { throw HarnessError("nginx did not start") }
        }

        deinit {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            try? FileManager.default.removeItem(at: directory)
        }
    }


    private func curl(_ name: String, port: UInt16, cacert: String, extra: [String] = []) throws -> String {
        try Harness.run("/usr/bin/curl", ["-s", "--max-time", "5", "--resolve", "\(name):\(port):127.0.0.1", "--cacert", cacert] + extra + ["https://\(name):\(port)/"])
    }

    @Test func curl_reachesTheEndpointWhoseCertificateMatches_andBigBodiesPassIntact() throws {
        let shop = try TLSServer(name: "shop.example.com"), api = try TLSServer(name: "api.example.com")
        let port = Harness.freePort(), admin = Harness.freePort()
        let daemon = try DaemonProcess(config: """
        admin: {listen: 127.0.0.1:\(admin)}
        services:
          - {name: shop, listen: 127.0.0.1:\(port), serverNames: [shop.example.com], endpoints: [127.0.0.1:\(shop.port)]}
          - {name: api, listen: 127.0.0.1:\(port), serverNames: [api.example.com], endpoints: [127.0.0.1:\(api.port)]}
        """)
        // Verified against each server's own certificate: the wrong endpoint would fail it.
        #expect(try curl("shop.example.com", port: port, cacert: shop.certificate) == "shop.example.com")
        #expect(try curl("api.example.com", port: port, cacert: api.certificate) == "api.example.com")
        #expect(try curl("api.example.com", port: port, cacert: shop.certificate).isEmpty, "api's certificate is not shop's")
        // openssl s_client with -servername completes a handshake with the right endpoint.
        let handshake = try Harness.run("/bin/sh", ["-c", "echo | /usr/bin/openssl s_client -connect 127.0.0.1:\(port) -servername shop.example.com 2>/dev/null"])
        #expect(handshake.contains("CN = shop.example.com") || handshake.contains("CN=shop.example.com"))
        withExtendedLifetime(daemon) {}
    }
}
