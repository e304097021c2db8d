import Foundation
import Testing
import TestCommands
@testable import Hardware

/// What the monitor keeps for `since`: the latest `capacity` events, and from when on
/// that record is complete.
@Suite("Hardware event history")
struct HardwareEventHistoryTests {
    static func event(_ index: Int, at time: Int64) -> HardwareEvent {
        HardwareEvent(action: "change", subsystem: "net", devPath: "/devices/virtual/net/x\(index)", time: time)
    }

    @Test("the latest capacity events are kept; since before the oldest kept, or before recording began, is incomplete")
    func keepsTheLatest() {
        var history = HardwareEventHistory(capacity: 8)
        history.recording(from: 1_000)
        for index in 0..<12 { history.append(Self.event(index, at: 2_000 + Int64(index) * 10)) }
        // Kept: events 4…11 (times 2040…2110); dropped: 0…3 (the last dropped at 2030).
        let all = history.events(since: 0)
        #expect(all.events.map(\.devPath) == (4..<12).map { "/devices/virtual/net/x\($0)" })
        #expect(!all.complete)
        #expect(!history.events(since: 2_030).complete)
        #expect(history.events(since: 2_031).complete)
        #expect(history.events(since: 2_040).events.count == 8)
        #expect(history.events(since: 2_041).events.count == 7)
        #expect(history.events(since: 2_110).events.count == 1)
        let future = history.events(since: 5_000)
        #expect(future.events.isEmpty && future.complete)
        // The monitor stopped and started again: what came in between is unknown.
        history.recording(from: 3_000)
        #expect(!history.events(since: 2_500).complete)
        #expect(history.events(since: 3_000).complete)
    }

    @Test("RFC 3339 as the events write it reads back to the same nanoseconds, as Python reads it; other shapes and years are refused")
    func rfc3339() throws {
        var generator = SystemRandomNumberGenerator()
        let times = (0..<20).map { _ in Int64.random(in: 0...4_102_444_800_000_000_000, using: &generator) }
        let texts = times.map(HardwareEvent.rfc3339)
        let script = """
            import calendar, sys, time
            for text in sys.stdin.read().split():
                print(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(text[20:29]))
            """
        let result = try Command.run("python3", ["-c", script], input: Data(texts.joined(separator: "\n").utf8))
        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.output.split(separator: "\n").map { Int64($0) } == times)
        for (time, text) in zip(times, texts) { #expect(HardwareEvent.nanoseconds(rfc3339: text) == time, "\(text)") }
        for bad in ["2026-11-30T01:02:03Z", "2026-11-30T01:02:03.123456789+01:00", "2026-13-30T01:02:03.123456789Z", "2026-11-30 01:02:03.123456789Z", "x026-11-30T01:02:03.123456789Z",
                    // Times no Int64 of nanoseconds holds (a peer's text may be anything), and before 1970.
                    "9999-12-31T23:59:59.999999999Z", "2262-04-11T23:47:16.854775808Z", "2263-01-01T00:00:00.000000000Z",
                    "1969-12-31T23:59:59.999999999Z", "0000-01-01T00:00:00.000000000Z"] {
            #expect(HardwareEvent.nanoseconds(rfc3339: bad) == nil, "\(bad)")
        }
    }
}
