import CLibUdev

/// A libudev device reference, released with the value. Used within one inventory
/// run on one thread, so deliberately not Sendable.
final class UdevDevice {
    let handle: OpaquePointer

    init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        udev_device_unref(handle)
    }

    var sysname: String { string(udev_device_get_sysname(handle)) ?? "" }
    var syspath: String { string(udev_device_get_syspath(handle)) ?? "" }
    var devpath: String { string(udev_device_get_devpath(handle)) ?? "" }
    var devtype: String? { string(udev_device_get_devtype(handle)) }
    var devnode: String? { string(udev_device_get_devnode(handle)) }
    var subsystem: String? { string(udev_device_get_subsystem(handle)) }

    /// A udev property (`ID_MODEL`), nil when unset or empty.
    func property(_ key: String) -> String? {
        string(udev_device_get_property_value(handle, key))
    }

    /// A sysfs attribute with surrounding whitespace removed, nil when absent or blank.
    func attribute(_ name: String) -> String? {
        string(udev_device_get_sysattr_value(handle, name)).map(trimmed).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The parent device; the reference is owned by the child, so it is retained here.
    var parent: UdevDevice? {
        guard let parent = udev_device_get_parent(handle) else { return nil }
        return UdevDevice(udev_device_ref(parent))
    }

    /// The subsystems of every ancestor, nearest first.
    var ancestorSubsystems: [String] {
        var result: [String] = []
        var cursor = udev_device_get_parent(handle)
        while let device = cursor {
            if let subsystem = string(udev_device_get_subsystem(device)) { result.append(subsystem) }
            cursor = udev_device_get_parent(device)
        }
        return result
    }

    /// The nearest PCI ancestor's vendor id (`0x144d` → 0x144d).
    var pciAncestorVendorID: UInt16? {
        guard let pci = udev_device_get_parent_with_subsystem_devtype(handle, "pci", nil),
            let vendor = string(udev_device_get_sysattr_value(pci, "vendor"))
        else { return nil }
        return pciID(vendor)
    }

    private func string(_ pointer: UnsafePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        let value = String(cString: pointer)
        return value.isEmpty ? nil : value
    }
}

func trimmed(_ text: String) -> String {
    var view = Substring(text)
    while let first = view.first, first.isWhitespace { view.removeFirst() }
    while let last = view.last, last.isWhitespace { view.removeLast() }
    return String(view)
}

/// `0x1af4` → 0x1af4; nil for anything that is not a 16-bit hex id.
func pciID(_ text: String) -> UInt16? {
    let lower = text.lowercased()
    guard lower.hasPrefix("0x"), lower.count == 6 else { return nil }
    return UInt16(lower.dropFirst(2), radix: 16)
}

/// Decodes udev's `_ENC` property escaping (`\x20` for a space).
func decodeUdevEscapes(_ text: String) -> String {
    decodeByteEscapes(text, hex: true)
}

/// Decodes one-byte backslash escapes: udev's hexadecimal `\x20`, or (with `hex`
/// false) the kernel's octal `\040` of mountinfo. Anything else stays as it is.
func decodeByteEscapes(_ text: some StringProtocol, hex: Bool) -> String {
    let (skip, digits, radix) = hex ? (2, 2, 16) : (1, 3, 8)
    var bytes: [UInt8] = []
    let utf8 = Array(text.utf8)
    var index = 0
    while index < utf8.count {
        if utf8[index] == UInt8(ascii: "\\"), index + skip + digits - 1 < utf8.count,
            !hex || utf8[index + 1] == UInt8(ascii: "x"),
            let byte = UInt8(String(decoding: utf8[(index + skip)..<(index + skip + digits)], as: UTF8.self), radix: radix)
        {
            bytes.append(byte)
            index += skip + digits
        } else {
            bytes.append(utf8[index])
            index += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
