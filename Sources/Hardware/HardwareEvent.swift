import Glibc

/// One udev event on a device the inventory reports: added, removed, changed, or its
/// driver bound or unbound. `time` is when the agent received it (nanoseconds since the
/// Unix epoch, from the realtime clock); the other fields are udev's, nil when unknown.
public struct HardwareEvent: Sendable, Equatable {
    /// `add`, `remove`, `change`, `bind` or `unbind`.
    public var action: String
    /// `block`, `pci`, `usb`, `net` or `drm`.
    public var subsystem: String
    /// The kernel's device path under /sys (e.g. `/devices/pci0000:00/…/block/sda`).
    public var devPath: String
    public var time: Int64
    /// The device node (`/dev/sda`), else the kernel's name (`eth0`, `0000:00:02.0`).
    public var devName: String?
    public var devType: String?
    public var driver: String?
    /// Names from udev's hardware database or the device itself, as the inventory shows them.
    public var vendor: String?
    public var model: String?
    /// Hexadecimal ids: PCI's `PCI_ID`, USB's `ID_VENDOR_ID`/`ID_MODEL_ID`.
    public var vendorID: String?
    public var modelID: String?

    public init(
        action: String, subsystem: String, devPath: String, time: Int64 = HardwareEvent.now,
        devName: String? = nil, devType: String? = nil, driver: String? = nil,
        vendor: String? = nil, model: String? = nil, vendorID: String? = nil, modelID: String? = nil
    ) {
        self.action = action
        self.subsystem = subsystem
        self.devPath = devPath
        self.time = time
        self.devName = devName
        self.devType = devType
        self.driver = driver
        self.vendor = vendor
        self.model = model
        self.vendorID = vendorID
        self.modelID = modelID
    }

    /// Not udev's: the monitor's socket overran and the kernel dropped events, which
    /// ones unknown (`HardwareEventMonitor`). Its other fields are empty.
    public static let eventsLost = "events-lost"

    /// The realtime clock, in nanoseconds since the Unix epoch.
    public static var now: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// `time` as RFC 3339 in UTC with nanoseconds: `2026-11-30T01:02:03.123456789Z`.
    public var rfc3339Time: String { Self.rfc3339(time) }

    public static func rfc3339(_ nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        let fraction = Int(nanoseconds % 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))"
            + "T\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2))"
            + ".\(padded(fraction, 9))Z"
    }

    /// The inverse of `rfc3339`: exactly that shape (UTC, nine decimals), from 1970 to
    /// 2262 (what nanoseconds in an `Int64` hold), or nil. The text may be a peer's:
    /// any other year is refused, never a trap.
    public static func nanoseconds(rfc3339 text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 30, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes[19] == UInt8(ascii: "."), bytes[29] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (0x30...0x39).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), let fraction = number(20..<29),
              (1970...2262).contains(year), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let (scaled, overflow) = Int64(timegm(&parts)).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (sum, overflowed) = scaled.addingReportingOverflow(Int64(fraction))
        return overflowed || sum < 0 ? nil : sum
    }
}
