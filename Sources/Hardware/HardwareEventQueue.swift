import Synchronization

/// A subscriber's events waiting to be taken, at most `capacity` of them: a consumer
/// that does not keep up (an HTTP client that stops reading) costs a bounded amount of
/// memory, and learns that it lost events instead of silently missing them.
///
/// `wake` runs (on the monitor's thread) when the queue goes from empty to not empty,
/// once until the next `take()`, so a consumer on an event loop gets one task per
/// batch, never one per event; and once more when it overflows, so that a consumer
/// waiting for its client to read can end the stream at once.
public final class HardwareEventQueue: Sendable {
    private struct State {
        var events: [HardwareEvent] = []
        var overflowed = false
        var woken = false
    }

    /// What `take()` hands over: the events in order, and whether some were lost after them.
    public struct Batch: Sendable {
        public var events: [HardwareEvent]
        /// The queue was full and dropped the events that followed: the consumer is
        /// told so once, and the queue takes nothing more.
        public var overflowed: Bool
    }

    public let capacity: Int
    private let state = Mutex(State())
    private let wake: @Sendable () -> Void

    public init(capacity: Int = 1024, wake: @escaping @Sendable () -> Void) {
        self.capacity = capacity
        self.wake = wake
    }

    /// Queues `event` (or marks the overflow when full); wakes the consumer if needed.
    public func append(_ event: HardwareEvent) {
        let wakeNow = state.withLock { state -> Bool in
            guard !state.overflowed else { return false }
            guard state.events.count < capacity else {
                state.overflowed = true
                return true
            }
            state.events.append(event)
            defer { state.woken = true }
            return !state.woken
        }
        if wakeNow { wake() }
    }

    /// Whether events were lost (the consumer should end).
    public var hasOverflowed: Bool { state.withLock { $0.overflowed } }

    /// Everything queued so far; the next `append` wakes the consumer again.
    public func take() -> Batch {
        state.withLock { state in
            defer {
                state.events.removeAll(keepingCapacity: false)
                state.woken = false
            }
            return Batch(events: state.events, overflowed: state.overflowed)
        }
    }
}
