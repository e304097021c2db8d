import Synchronization
import Testing
@testable import Hardware

@Suite("A subscriber's bounded event queue")
struct HardwareEventQueueTests {
    final class Wakes: Sendable {
        let count = Atomic<Int>(0)
    }

    static func event(_ number: Int) -> HardwareEvent {
        HardwareEvent(action: "change", subsystem: "block", devPath: "/devices/virtual/block/loop\(number)")
    }

    @Test("events come out in order, with one wake per batch")
    func orderAndWakes() {
        let wakes = Wakes()
        let queue = HardwareEventQueue(capacity: 8) { wakes.count.add(1, ordering: .relaxed) }
        for number in 0..<3 { queue.append(Self.event(number)) }
        #expect(wakes.count.load(ordering: .relaxed) == 1)
        let batch = queue.take()
        #expect(batch.events.map(\.devPath) == (0..<3).map { "/devices/virtual/block/loop\($0)" })
        #expect(!batch.overflowed)
        #expect(queue.take().events.isEmpty)
        queue.append(Self.event(3))
        #expect(wakes.count.load(ordering: .relaxed) == 2)
    }

    @Test("a consumer that does not take holds at most `capacity` events, then learns it lost some")
    func overflow() {
        let wakes = Wakes()
        let queue = HardwareEventQueue(capacity: 4) { wakes.count.add(1, ordering: .relaxed) }
        for number in 0..<1000 { queue.append(Self.event(number)) }
        // Once for the first event, once for the overflow, never per event.
        #expect(wakes.count.load(ordering: .relaxed) == 2)
        #expect(queue.hasOverflowed)
        let batch = queue.take()
        #expect(batch.events.count == 4)
        #expect(batch.events.last?.devPath == "/devices/virtual/block/loop3")
        #expect(batch.overflowed)
        // Nothing more is queued once it overflowed.
        queue.append(Self.event(1001))
        #expect(queue.take().events.isEmpty)
    }

    @Test("RFC 3339 time with nanoseconds, in UTC")
    func time() {
        #expect(HardwareEvent.rfc3339(0) == "1970-01-01T00:00:00.000000000Z")
        #expect(HardwareEvent.rfc3339(1_795_000_000_123_456_789) == "2026-11-18T11:06:40.123456789Z")
    }
}
