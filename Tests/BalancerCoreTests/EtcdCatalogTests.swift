import Testing
@testable import BalancerCore

/// etcd keys validated one by one and merged into the file's services.
@Suite struct EtcdCatalogTests {
    private let file: Config = try! ConfigFixture.parse("""
    discovery: {etcd: {endpoints: ["http://127.0.0.1:2379"]}}
    defaults: {connectTimeout: 3s}
    services:
      - name: web
        listen: 127.0.0.1:30080
        endpoints: [127.0.0.1:8081]
    """)

    private func catalog() -> EtcdCatalog { EtcdCatalog(prefix: "/balancerd", template: file.serviceDefaults) }

    @Test func service_fromEtcd_inheritsTheFilesDefaults_andFollowsTheFilesServices() throws {
        var etcd = catalog()
        #expect(etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:30090", "endpoints": ["127.0.0.1:9000"]}"#, revision: 5) == true)
        let (config, rejected) = etcd.merged(into: file)
        #expect(rejected.isEmpty)
        #expect(config.services.map(\.name) == ["web", "api"])
        #expect(config.services[1].source == "etcd")
        #expect(config.services[1].connectTimeout == 3)
        #expect(config.services[1].endpoints.map(\.source) == ["etcd"])
    }

    @Test func endpoints_fromEtcd_followTheServicesOwn_inKeyOrder() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/endpoints/web/pod-b", value: #""127.0.0.1:8083""#, revision: 3)
        etcd.put(key: "/balancerd/endpoints/web/pod-a", value: #"{"address": "127.0.0.1:8082", "weight": 4}"#, revision: 4)
        etcd.put(key: "/balancerd/endpoints/web/Pod-c", value: #""127.0.0.1:8084""#, revision: 5)
        let endpoints = etcd.merged(into: file).config.services[0].endpoints
        // Bytewise: "P" (0x50) sorts before "p".
        #expect(endpoints.map(\.name) == ["127.0.0.1:8081", "127.0.0.1:8084", "127.0.0.1:8082", "127.0.0.1:8083"])
        #expect(endpoints.map(\.source) == ["file", "etcd", "etcd", "etcd"])
        #expect(endpoints[2].weight == 4)
    }

    @Test func badValue_isRejectedAlone_andTheKeyKeepsItsLastGoodValue_untilFixedOrDeleted() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:30090", "endpoints": []}"#, revision: 5)
        #expect(etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:70000", "endpoints": []}"#, revision: 6) == false)
        etcd.put(key: "/balancerd/endpoints/web/pod-a", value: #""127.0.0.1:8082""#, revision: 7)
        var (config, rejected) = etcd.merged(into: file)
        #expect(config.services.map(\.listen.description) == ["127.0.0.1:30080", "127.0.0.1:30090"])
        #expect(config.services[0].endpoints.count == 2)
        #expect(rejected.map(\.key) == ["/balancerd/services/api"])
        #expect(rejected.first?.revision == 6)
        #expect(rejected.first?.error == "/balancerd/services/api@6:1:12: listen: port 70000 is out of range (1-65535)")
        etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:30091", "endpoints": []}"#, revision: 8)
        (config, rejected) = etcd.merged(into: file)
        #expect(rejected.isEmpty)
        #expect(config.services[1].listen.description == "127.0.0.1:30091")
        etcd.put(key: "/balancerd/services/api", value: "{not json", revision: 9)
        etcd.delete(key: "/balancerd/services/api")
        (config, rejected) = etcd.merged(into: file)
        #expect(rejected.isEmpty)
        #expect(config.services.count == 1)
    }

    @Test func clash_withTheFileOrAnEarlierKey_byNameOrListen_isRejected() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/services/web", value: #"{"listen": "127.0.0.1:30099", "endpoints": []}"#, revision: 2)
        etcd.put(key: "/balancerd/services/a", value: #"{"listen": "127.0.0.1:30080", "endpoints": []}"#, revision: 3)
        etcd.put(key: "/balancerd/services/b", value: #"{"listen": "127.0.0.1:30100", "endpoints": []}"#, revision: 4)
        etcd.put(key: "/balancerd/services/c", value: #"{"listen": "127.0.0.1:30100", "endpoints": []}"#, revision: 5)
        etcd.put(key: "/balancerd/services/d", value: #"{"name": "e", "listen": "127.0.0.1:30101", "endpoints": []}"#, revision: 6)
        let (config, rejected) = etcd.merged(into: file)
        #expect(config.services.map(\.name) == ["web", "b"])
        #expect(rejected.map(\.key) == ["/balancerd/services/a", "/balancerd/services/c", "/balancerd/services/d", "/balancerd/services/web"])
        #expect(rejected.last?.error == "service 'web' is already defined in the file")
        #expect(rejected[2].error.contains("differs from the key's name"))
    }

    @Test func endpointKeys_ofAServiceThatDoesNotExist_wait_andJoinWhenItDoes() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/endpoints/api/pod-a", value: #""127.0.0.1:9001""#, revision: 2)
        #expect(etcd.merged(into: file).config.services.count == 1)
        #expect(etcd.merged(into: file).rejected.isEmpty)
        etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:30090", "endpoints": ["127.0.0.1:9000"]}"#, revision: 3)
        #expect(etcd.merged(into: file).config.services[1].endpoints.map(\.name) == ["127.0.0.1:9000", "127.0.0.1:9001"])
    }

    @Test func keysOutsideTheLayout_areRejected_withTheKeyAndRevision() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/other", value: "1", revision: 2)
        etcd.put(key: "/balancerd/endpoints/web", value: #""127.0.0.1:1""#, revision: 3)
        etcd.put(key: "/balancerd/services/bad name", value: "{}", revision: 4)
        let rejected = etcd.merged(into: file).rejected
        #expect(rejected.count == 3)
        #expect(rejected.allSatisfy { $0.error.hasPrefix($0.key + "@") || $0.error.contains("not a valid name") })
    }

    @Test func replace_withAFreshRead_deletesWhatIsGone_andCountsOnlyChanges() {
        var etcd = catalog()
        etcd.put(key: "/balancerd/endpoints/web/a", value: #""127.0.0.1:9001""#, revision: 2)
        etcd.put(key: "/balancerd/endpoints/web/b", value: #""127.0.0.1:9002""#, revision: 3)
        let changes = etcd.replace(with: [("/balancerd/endpoints/web/b", #""127.0.0.1:9002""#, 3), ("/balancerd/endpoints/web/c", "bad", 9)])
        #expect(changes.changed == 2)
        #expect(changes.rejected == 1)
        #expect(etcd.merged(into: file).config.services[0].endpoints.map(\.name) == ["127.0.0.1:8081", "127.0.0.1:9002"])
    }

    @Test func reread_whenTheFilesDefaultsChange_appliesThemToEtcdServices() throws {
        var etcd = catalog()
        etcd.put(key: "/balancerd/services/api", value: #"{"listen": "127.0.0.1:30090", "endpoints": []}"#, revision: 5)
        var template = file.serviceDefaults
        template.connectTimeout = 4
        etcd.reread(template: template)
        #expect(etcd.merged(into: file).config.services[1].connectTimeout == 4)
    }
}
