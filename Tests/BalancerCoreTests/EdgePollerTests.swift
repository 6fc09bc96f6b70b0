import Glibc
import Testing
import BalancerCore

/// The edge-triggered poller against the real kernel (a socket pair), on a real loop.
@Suite struct EdgePollerTests {
    /// What the poller delivered, reached through the poller's context pointer.
    final class Recorder {
        var events: [(token: UInt64, events: EdgePoller.Events)] = []
    }

    static let record: EdgePoller.Function = { context, token, events in
        Unmanaged<Recorder>.fromOpaque(context!).takeUnretainedValue().events.append((token, EdgePoller.Events(rawValue: events)))
    }

    /// Runs `loop` for a few iterations (bounded: a timer ends it).
    private func spin(_ loop: EventLoop, seconds: Double = 0.05) {
        let stop = TimerWatcher(loop: loop) { loop.stop() }
        stop.start(after: seconds)
        loop.run()
    }

    /// A loop, its poller, and a connected socket pair (ours to register), closed at the end.
    final class Pair {
        let loop = EventLoop()
        let poller: EdgePoller
        let recorder: Recorder
        let ours: Int32
        let theirs: Int32

        init() throws {
            let recorder = Recorder()
            self.recorder = recorder
            poller = try EdgePoller(loop: loop, context: Unmanaged.passUnretained(recorder).toOpaque(), function: EdgePollerTests.record)
            var fds: [Int32] = [-1, -1]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
            (ours, theirs) = (fds[0], fds[1])
        }

        deinit {
            close(ours)
            close(theirs)
        }
    }

    @Test func add_whenPeerWritesTwice_reportsReadableOncePerWrite_notWhileUnread() throws {
        let pair = try Pair()
        let (loop, poller, recorder, ours, theirs) = (pair.loop, pair.poller, pair.recorder, pair.ours, pair.theirs)
        try poller.add(ours, token: 41)
        spin(loop)
        // Added: writable at once, reported once.
        #expect(recorder.events.count == 1)
        #expect(recorder.events.first?.token == 41)
        #expect(recorder.events.first?.events == [.writable])
        _ = write(theirs, "a", 1)
        spin(loop)
        spin(loop)
        // Unread bytes are reported once, not on every iteration (edge-triggered).
        let readable = recorder.events.filter { $0.events.contains(.readable) }
        #expect(readable.count == 1)
        _ = write(theirs, "b", 1)
        spin(loop)
        #expect(recorder.events.filter { $0.events.contains(.readable) }.count == 2)
    }

    @Test func event_whenPeerShutsDownWriting_saysPeerClosed() throws {
        let pair = try Pair()
        let (loop, poller, recorder, ours, theirs) = (pair.loop, pair.poller, pair.recorder, pair.ours, pair.theirs)
        try poller.add(ours, token: 40)
        _ = write(theirs, "bye", 3)
        shutdown(theirs, Int32(SHUT_WR))
        spin(loop)
        let last = try #require(recorder.events.last)
        #expect(last.events.contains(.readable))
        #expect(last.events.contains(.peerClosed))
        #expect(!last.events.contains(.failed))
    }

    @Test func again_callsBackOnTheNextIteration_withEachToken() throws {
        let pair = try Pair()
        pair.poller.again(7)
        pair.poller.again(9)
        #expect(pair.recorder.events.isEmpty)
        spin(pair.loop)
        #expect(pair.recorder.events.map(\.token) == [7, 9])
        #expect(pair.recorder.events.allSatisfy { $0.events == [.readable] })
    }

    @Test func remove_stopsReportsForADescriptorThatStaysOpen() throws {
        let pair = try Pair()
        let (loop, poller, recorder, ours, theirs) = (pair.loop, pair.poller, pair.recorder, pair.ours, pair.theirs)
        try poller.add(ours, token: 40)
        spin(loop)
        let before = recorder.events.count
        poller.remove(ours)
        _ = write(theirs, "x", 1)
        spin(loop)
        #expect(recorder.events.count == before)
    }
}
