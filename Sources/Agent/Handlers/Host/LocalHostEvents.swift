import Hardware
import NIOCore

/// This node's hardware events for one stream: a subscription to the process's udev
/// monitor with its own bounded queue (`HardwareEventQueue`, `queueCapacity` events).
/// When the client does not read and the queue fills, the stream ends with an
/// `overflow` line rather than grow or silently skip.
final class LocalHostEvents: EventLineSource {
    static let queueCapacity = 1024

    let nodeName: String
    private let queue: HardwareEventQueue
    private var subscription: HardwareEventSubscription?
    /// Events from before the stream began (`since`), written first; nil once written.
    private var earlier: (events: [HardwareEvent], complete: Bool)?
    private var wake: (() -> Void)?
    /// Lets the monitor's thread reach this source on its loop without keeping it alive.
    private final class Link {
        weak var source: LocalHostEvents?
    }

    /// Subscribes at once, so events from now on are kept until the stream starts. With
    /// `since` (nanoseconds since the Unix epoch), the monitor's kept events from then on
    /// come first, after a `history-incomplete` line when some may be missing.
    init(
        monitor: HardwareEventMonitor, nodeName: String, since: Int64? = nil, on eventLoop: EventLoop,
        capacity: Int = LocalHostEvents.queueCapacity
    ) throws(HardwareError) {
        self.nodeName = nodeName
        let link = NIOLoopBound(Link(), eventLoop: eventLoop)
        queue = HardwareEventQueue(capacity: capacity) {
            eventLoop.execute { link.value.source?.wake?() }
        }
        link.value.source = self
        let queue = self.queue
        let subscribed = try monitor.subscribe(since: since) { queue.append($0) }
        subscription = subscribed.subscription
        if since != nil { earlier = (subscribed.earlier, subscribed.complete) }
    }

    func start(wake: @escaping () -> Void) {
        self.wake = wake
    }

    var hasOverflowed: Bool { queue.hasOverflowed }

    func take(into buffer: inout ByteBuffer) -> Bool {
        guard subscription != nil else { return true }
        if let earlier {
            self.earlier = nil
            if !earlier.complete {
                let message = "this node keeps its last \(HardwareEventMonitor.historyCapacity) hardware events since its agent started: "
                    + "some since the time asked for may be missing"
                HostEventLine(notice: HostEventLine.historyIncomplete, nodeName: nodeName, message: message).write(to: &buffer)
            }
            for event in earlier.events { HostEventLine(event, nodeName: nodeName).write(to: &buffer) }
        }
        let batch = queue.take()
        for event in batch.events {
            if event.action == HardwareEvent.eventsLost {
                let message = "this node's udev monitor overran and the kernel dropped hardware events: re-read this node's /host/info"
                HostEventLine(notice: HostEventLine.eventsLost, nodeName: nodeName, message: message).write(to: &buffer)
            } else {
                HostEventLine(event, nodeName: nodeName).write(to: &buffer)
            }
        }
        guard batch.overflowed else { return false }
        HostEventLine(notice: HostEventLine.overflow, nodeName: nodeName, message: "the client did not read \(queue.capacity) events in time; events were lost, reconnect").write(to: &buffer)
        stop()
        return true
    }

    func stop() {
        subscription?.cancel()
        subscription = nil
        wake = nil
    }

    deinit {
        subscription?.cancel()
    }
}
