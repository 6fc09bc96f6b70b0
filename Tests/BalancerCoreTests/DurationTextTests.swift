import Testing
import BalancerCore

@Suite struct DurationTextTests {
    @Test func seconds_whenEachUnit_scales() {
        #expect(DurationText.seconds("500ms") == 0.5)
        #expect(DurationText.seconds("2s") == 2)
        #expect(DurationText.seconds("3m") == 180)
        #expect(DurationText.seconds("1h") == 3600)
        #expect(DurationText.seconds("0s") == 0)
    }

    @Test(arguments: ["", "s", "1", "1.5s", "-2s", "+2s", "2 s", "2S", "1d", "ms5"])
    func seconds_whenMalformed_isNil(text: String) {
        #expect(DurationText.seconds(text) == nil)
    }

    @Test func format_whenWholeUnits_isShortest() {
        #expect(DurationText.format(0.25) == "250ms")
        #expect(DurationText.format(30) == "30s")
        #expect(DurationText.format(120) == "2m")
        #expect(DurationText.format(3600) == "1h")
    }
}
