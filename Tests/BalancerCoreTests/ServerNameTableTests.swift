import Testing
import BalancerCore

/// Choosing a service by TLS server name.
@Suite struct ServerNameTableTests {
    private func table() -> ServerNameTable<String> {
        var table = ServerNameTable<String>()
        table.add("shop.example.com", "shop")
        table.add("*.shop.example.com", "shop-wild")
        table.add("*.example.com", "example-wild")
        table.add("API.example.com.", "api")
        table.add("*", "other")
        return table
    }

    @Test func exactFirst_thenLongestSuffix_thenTheFallback() {
        let names = table()
        #expect(names.lookup("shop.example.com") == "shop")
        #expect(names.lookup("a.b.shop.example.com") == "shop-wild")
        #expect(names.lookup("www.example.com") == "example-wild")
        #expect(names.lookup("api.EXAMPLE.com.") == "api")
        #expect(names.lookup("example.com") == "other")
        #expect(names.lookup(nil) == "other")
    }

    @Test func withoutFallback_unmatchedAndNamelessFindNothing() {
        var names = ServerNameTable<Int>()
        names.add("a.test", 1)
        #expect(names.lookup("b.test") == nil)
        #expect(names.lookup(nil) == nil)
        #expect(names.lookup(".a.test") == nil)
    }

    @Test func add_refusesTheSameNameTwice_andASecondFallback() {
        var names = ServerNameTable<Int>()
        // Mutating calls: their results are taken first, outside #expect.
        let added = [names.add("a.test", 1), names.add("A.test.", 2), names.add("*", 3), names.add("*", 4),
                     names.add("*.a.test", 5), names.add("*.A.TEST", 6)]
        #expect(added == [true, false, true, false, true, false])
    }
}
