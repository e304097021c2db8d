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
    private var wake: (() -> Void)?
    /// Lets the monitor's thread reach this source on its loop without keeping it alive.
    private final class Link {
        weak var source: LocalHostEvents?
    }

    /// Subscribes at once, so events from now on are kept until the stream starts.
    init(monitor: HardwareEventMonitor, nodeName: String, on eventLoop: EventLoop, capacity: Int = LocalHostEvents.queueCapacity) throws(HardwareError) {
        self.nodeName = nodeName
        let link = NIOLoopBound(Link(), eventLoop: eventLoop)
        queue = HardwareEventQueue(capacity: capacity) {
            eventLoop.execute { link.value.source?.wake?() }
        }
        link.value.source = self
        let queue = self.queue
        subscription = try monitor.subscribe { queue.append($0) }
    }

    func start(wake: @escaping () -> Void) {
        self.wake = wake
    }

    var hasOverflowed: Bool { queue.hasOverflowed }

    func take(into buffer: inout ByteBuffer) -> Bool {
        guard subscription != nil else { return true }
        let batch = queue.take()
        for event in batch.events { HostEventLine(event, nodeName: nodeName).write(to: &buffer) }
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
