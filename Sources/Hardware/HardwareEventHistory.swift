/// The latest events the process's monitor received, at most `capacity` of them, for a
/// stream that asks what happened before it came (`GET /host/events?since=`), and from
/// when on that record is complete: since the monitor last started, or since the last
/// event dropped to keep the capacity.
struct HardwareEventHistory {
    let capacity: Int
    /// Oldest first; removals from the front are rare (one per event once full) and cheap at this size.
    private var events: [HardwareEvent] = []
    /// Every event received at or after this time is kept; nil before the first start.
    private var completeFrom: Int64?

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The monitor (re)started at `time`: what came while it was stopped is unknown.
    mutating func recording(from time: Int64) {
        completeFrom = time
    }

    mutating func append(_ event: HardwareEvent) {
        if events.count == capacity {
            let dropped = events.removeFirst()
            completeFrom = max(completeFrom ?? dropped.time + 1, dropped.time + 1)
        }
        events.append(event)
    }

    /// The kept events received at or after `since`, and whether none at or after it is missing.
    func events(since: Int64) -> (events: [HardwareEvent], complete: Bool) {
        (events.filter { $0.time >= since }, completeFrom.map { since >= $0 } ?? false)
    }
}
