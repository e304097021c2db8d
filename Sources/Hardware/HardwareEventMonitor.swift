import CLibUdev
import Glibc
import Synchronization

/// The process's one udev monitor, shared by every subscriber (the host-info cache and
/// each open event stream). It runs on a thread of its own, blocked in `poll()` on the
/// monitor's socket and a wake pipe, so it holds no worker of Swift concurrency, Dispatch
/// or NIO, and costs nothing while nothing changes. It starts with the first subscriber
/// and stops (its thread ends, its socket closes) when the last one leaves.
///
/// Watched: the subsystems the inventory reports (`block`, `pci`, `usb` devices but not
/// their interfaces, `net`, `drm`), actions `add`, `remove`, `change`, `bind` and
/// `unbind` (a driver attached or detached changes the inventory's `Driver`). Events
/// come from udevd when it runs (its database is then up to date), else from the kernel.
///
/// The monitor's socket holds `receiveBufferSize` bytes of events not yet read (udevadm
/// asks for 128 MiB; the kernel's default is about 200 KiB, a few hundred events, which
/// a `udevadm trigger` or a SAN rescan passes at once). When it overruns all the same,
/// the kernel drops events and says so (`ENOBUFS`): every subscriber is then given one
/// `HardwareEvent.eventsLost` event, and the kept history counts as incomplete from then.
public final class HardwareEventMonitor: Sendable {
    /// The process's monitor.
    public static let shared = HardwareEventMonitor()

    /// Where events come from.
    public enum Source: Sendable {
        /// udevd's, when it runs (`/run/udev/control`), else the kernel's.
        case automatic
        /// The kernel's (tests: a private network namespace has no udevd).
        case kernel
    }

    private let source: Source
    private let receiveBufferSize: Int32

    public static let subsystems: [(subsystem: String, devType: String?)] = [
        ("block", nil), ("pci", nil), ("usb", "usb_device"), ("net", nil), ("drm", nil),
    ]
    public static let actions: Set<String> = ["add", "remove", "change", "bind", "unbind"]

    private struct State {
        var subscribers: [Int: @Sendable (HardwareEvent) -> Void] = [:]
        var nextID = 0
        var running: RunningMonitor?
        var history = HardwareEventHistory(capacity: HardwareEventMonitor.historyCapacity)
    }

    /// Events kept for subscribers that ask for what happened before they came
    /// (`subscribe(since:)`): the latest ones, whatever their age.
    public static let historyCapacity = 1024

    private let state = Mutex(State())

    /// Tests may make their own; the agent uses `shared`.
    public init(source: Source = .automatic, receiveBufferSize: Int32 = 16 << 20) {
        self.source = source
        self.receiveBufferSize = receiveBufferSize
    }

    /// How many subscribers are registered (the agent logs it as streams come and go).
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Calls `deliver` on the monitor's thread for every event from now on, until the
    /// returned subscription is cancelled (or released). `deliver` must be quick: queue
    /// the event (`HardwareEventQueue`) or note it, never block. Returns once events are
    /// being received, so a change made after this returns is seen; throws when no udev
    /// monitor can be opened.
    public func subscribe(_ deliver: @escaping @Sendable (HardwareEvent) -> Void) throws(HardwareError) -> HardwareEventSubscription {
        try subscribe(since: nil, deliver).subscription
    }

    /// `subscribe`, and the kept events received at or after `since` (nanoseconds since
    /// the Unix epoch), oldest first. Taken in one step with the registration, so every
    /// event is either among them or delivered, never both, never neither. `complete` is
    /// false when events at or after `since` may be missing: the monitor was not running
    /// then, or they were dropped to keep `historyCapacity`.
    public func subscribe(
        since: Int64?, _ deliver: @escaping @Sendable (HardwareEvent) -> Void
    ) throws(HardwareError) -> (subscription: HardwareEventSubscription, earlier: [HardwareEvent], complete: Bool) {
        try state.withLock { state throws(HardwareError) in
            if state.running == nil {
                state.running = try RunningMonitor.start(
                    source: source, receiveBufferSize: receiveBufferSize,
                    deliver: { [weak self] in self?.deliver($0) }, lost: { [weak self] in self?.lost() })
                state.history.recording(from: HardwareEvent.now)
            }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = deliver
            let earlier: (events: [HardwareEvent], complete: Bool) = since.map { state.history.events(since: $0) } ?? ([], true)
            return (HardwareEventSubscription(monitor: self, id: id), earlier.events, earlier.complete)
        }
    }

    fileprivate func cancel(_ id: Int) {
        let stopping = state.withLock { state -> RunningMonitor? in
            state.subscribers[id] = nil
            guard state.subscribers.isEmpty else { return nil }
            defer { state.running = nil }
            return state.running
        }
        stopping?.stop()
    }

    private func deliver(_ event: HardwareEvent) {
        let subscribers = state.withLock { state in
            state.history.append(event)
            return Array(state.subscribers.values)
        }
        for deliver in subscribers { deliver(event) }
    }

    /// The socket overran: events were dropped by the kernel, which ones is unknown.
    private func lost() {
        let event = HardwareEvent(action: HardwareEvent.eventsLost, subsystem: "", devPath: "")
        let subscribers = state.withLock { state in
            // Kept events from before are still true, but some since are missing.
            state.history.recording(from: event.time)
            return Array(state.subscribers.values)
        }
        for deliver in subscribers { deliver(event) }
    }
}

/// One subscriber's registration with a `HardwareEventMonitor`; cancelled explicitly or
/// when released.
public final class HardwareEventSubscription: Sendable {
    private let monitor: HardwareEventMonitor
    private let id: Int
    private let cancelled = Atomic<Bool>(false)

    fileprivate init(monitor: HardwareEventMonitor, id: Int) {
        self.monitor = monitor
        self.id = id
    }

    public func cancel() {
        guard !cancelled.exchange(true, ordering: .relaxed) else { return }
        monitor.cancel(id)
    }

    deinit { cancel() }
}

/// The monitor's thread and its udev handles, from start to stop.
private final class RunningMonitor: Sendable {
    /// Write end of the pipe that wakes the thread to stop.
    private let stopWriter: Int32

    private init(stopWriter: Int32) {
        self.stopWriter = stopWriter
    }

    /// The thread's work, passed to it whole: it owns the udev handles and the pipe's read end.
    private final class Work: @unchecked Sendable {
        // Safe: created before the thread starts, then touched only by that thread.
        let udev: OpaquePointer
        let monitor: OpaquePointer
        let stopReader: Int32
        let deliver: @Sendable (HardwareEvent) -> Void
        let lost: @Sendable () -> Void

        init(
            udev: OpaquePointer, monitor: OpaquePointer, stopReader: Int32,
            deliver: @escaping @Sendable (HardwareEvent) -> Void, lost: @escaping @Sendable () -> Void
        ) {
            self.udev = udev
            self.monitor = monitor
            self.stopReader = stopReader
            self.deliver = deliver
            self.lost = lost
        }

        deinit {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            close(stopReader)
        }
    }

    static func start(
        source: HardwareEventMonitor.Source, receiveBufferSize: Int32,
        deliver: @escaping @Sendable (HardwareEvent) -> Void, lost: @escaping @Sendable () -> Void
    ) throws(HardwareError) -> RunningMonitor {
        guard let udev = udev_new() else { throw .udevUnavailable }
        let name = source == .automatic && access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel"
        guard let monitor = udev_monitor_new_from_netlink(udev, name) else {
            udev_unref(udev)
            throw .udevUnavailable
        }
        for (subsystem, devType) in HardwareEventMonitor.subsystems {
            udev_monitor_filter_add_match_subsystem_devtype(monitor, subsystem, devType)
        }
        // Best effort: without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max.
        _ = udev_monitor_set_receive_buffer_size(monitor, receiveBufferSize)
        var fds: [Int32] = [0, 0]
        guard udev_monitor_enable_receiving(monitor) == 0, pipe(&fds) == 0 else {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            throw .udevUnavailable
        }
        // Not inherited by the processes the agent starts (none today, but a leaked pipe would pin the thread).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // Receiving is enabled: events from here on are queued in the socket, even
        // before the thread polls it.
        let work = Work(udev: udev, monitor: monitor, stopReader: fds[0], deliver: deliver, lost: lost)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            let work = Unmanaged<Work>.fromOpaque(argument!).takeRetainedValue()
            RunningMonitor.run(work)
            return nil
        }, Unmanaged.passRetained(work).toOpaque())
        guard started == 0 else {
            Unmanaged.passUnretained(work).release()
            close(fds[1])
            throw .udevUnavailable
        }
        pthread_detach(thread)
        return RunningMonitor(stopWriter: fds[1])
    }

    /// Wakes the thread, which then ends and releases the udev handles.
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopWriter, &byte, 1)
        close(stopWriter)
    }

    private static func run(_ work: Work) {
        var fds = [
            pollfd(fd: udev_monitor_get_fd(work.monitor), events: Int16(POLLIN), revents: 0),
            pollfd(fd: work.stopReader, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0, fds[1].revents == 0 else { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            guard let device = udev_monitor_receive_device(work.monitor) else {
                // The kernel dropped events the socket had no room for; the socket goes on.
                if errno == ENOBUFS { work.lost() }
                continue
            }
            defer { udev_device_unref(device) }
            if let event = event(from: device) { work.deliver(event) }
        }
    }

    private static func event(from device: OpaquePointer) -> HardwareEvent? {
        func text(_ pointer: UnsafePointer<CChar>?) -> String? {
            guard let pointer else { return nil }
            let value = String(cString: pointer)
            return value.isEmpty ? nil : value
        }
        func property(_ name: String) -> String? { text(udev_device_get_property_value(device, name)) }
        guard let action = text(udev_device_get_action(device)), HardwareEventMonitor.actions.contains(action),
              let subsystem = text(udev_device_get_subsystem(device)) else { return nil }
        var event = HardwareEvent(
            action: action, subsystem: subsystem, devPath: text(udev_device_get_devpath(device)) ?? "",
            devName: text(udev_device_get_devnode(device)) ?? text(udev_device_get_sysname(device)),
            devType: text(udev_device_get_devtype(device)), driver: text(udev_device_get_driver(device)) ?? property("DRIVER"),
            vendor: property("ID_VENDOR_FROM_DATABASE") ?? property("ID_VENDOR"),
            model: property("ID_MODEL_FROM_DATABASE") ?? property("ID_MODEL"),
            vendorID: property("ID_VENDOR_ID"), modelID: property("ID_MODEL_ID"))
        // PCI says its ids as "8086:100E".
        if let pciID = property("PCI_ID"), event.vendorID == nil {
            let ids = pciID.split(separator: ":").map { $0.lowercased() }
            if ids.count == 2 { (event.vendorID, event.modelID) = (ids[0], ids[1]) }
        }
        return event
    }
}
