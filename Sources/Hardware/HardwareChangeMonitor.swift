import CLibUdev
import Dispatch
import Glibc
import Synchronization

/// Watches udev for block and PCI devices coming, going or changing, and calls
/// `onChange` for each event, on its own thread. Events come from udevd when it runs
/// (so its database is up to date by then), else straight from the kernel.
public final class HardwareChangeMonitor: Sendable {
    /// Write end of the pipe that wakes the monitor thread to stop.
    private let stopWriter: Int32
    private let stopped = Atomic<Bool>(false)

    /// Starts listening; returns once events are being received, so a change made
    /// after this returns is seen. Throws when no udev monitor can be opened.
    public init(onChange: @escaping @Sendable (_ subsystem: String, _ action: String) -> Void) throws(HardwareError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .udevUnavailable }
        let ready = DispatchSemaphore(value: 0)
        let failed = Atomic<Bool>(false)
        let stopReader = fds[0]
        // The udev handles are created and used only on the monitor's own queue,
        // which the blocking poll keeps for itself until stop().
        DispatchQueue(label: "deckhand-udev-monitor").async {
            guard let udev = udev_new() else {
                failed.store(true, ordering: .relaxed)
                ready.signal()
                return
            }
            defer { udev_unref(udev) }
            let source = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel"
            guard let monitor = udev_monitor_new_from_netlink(udev, source) else {
                failed.store(true, ordering: .relaxed)
                ready.signal()
                return
            }
            defer { udev_monitor_unref(monitor) }
            udev_monitor_filter_add_match_subsystem_devtype(monitor, "block", nil)
            udev_monitor_filter_add_match_subsystem_devtype(monitor, "pci", nil)
            guard udev_monitor_enable_receiving(monitor) == 0 else {
                failed.store(true, ordering: .relaxed)
                ready.signal()
                return
            }
            ready.signal()
            Self.run(monitor: monitor, stopReader: stopReader, onChange: onChange)
            close(stopReader)
        }
        ready.wait()
        stopWriter = fds[1]
        if failed.load(ordering: .relaxed) {
            close(fds[1])
            throw .udevUnavailable
        }
    }

    deinit {
        stop()
    }

    /// Stops the monitor thread; idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        var byte: UInt8 = 1
        _ = write(stopWriter, &byte, 1)
        close(stopWriter)
    }

    private static func run(
        monitor: OpaquePointer, stopReader: Int32, onChange: @Sendable (String, String) -> Void
    ) {
        var fds = [
            pollfd(fd: udev_monitor_get_fd(monitor), events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopReader, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0, fds[1].revents == 0 else { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            guard let device = udev_monitor_receive_device(monitor) else { continue }
            let subsystem = udev_device_get_subsystem(device).map { String(cString: $0) } ?? ""
            let action = udev_device_get_action(device).map { String(cString: $0) } ?? ""
            udev_device_unref(device)
            onChange(subsystem, action)
        }
    }
}
