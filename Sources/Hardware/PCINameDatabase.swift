import CPCIShim
import Synchronization

/// libpci's name database (pci.ids, then udev's hwdb), loaded once and kept for the
/// life of the process: parsing pci.ids costs more than a whole inventory, so a
/// request must not pay for it. Names come out exactly as `lspci` prints them.
public final class PCINameDatabase: Sendable {
    /// libpci caches hwdb answers inside the handle, so lookups are serialised.
    private let access: Mutex<UnsafeMutablePointer<pci_access>?>

    /// Opens and parses the name database at `idsFile` (nil: libpci's default path).
    /// A missing file is not an error: names then fall back to numbers, as in lspci.
    public init(idsFile: String?) throws(HardwareError) {
        guard let handle = deckhand_pci_new(nil, idsFile) else {
            throw .pciUnavailable("pci_alloc failed")
        }
        var message = [CChar](repeating: 0, count: 256)
        if deckhand_pci_load_names(handle, &message, Int32(message.count)) < 0 {
            pci_cleanup(handle)
            throw .pciUnavailable(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        access = Mutex(handle)
    }

    deinit {
        access.withLock { handle in
            if let handle { pci_cleanup(handle) }
            handle = nil
        }
    }

    /// `Intel Corporation`, or `Vendor 1234` when unknown.
    public func vendorName(vendorID: UInt16) -> String {
        lookup(PCI_LOOKUP_VENDOR.rawValue, Int32(vendorID))
    }

    /// `Virtio 1.0 block device`, or `Device 0d57` when unknown.
    public func deviceName(vendorID: UInt16, deviceID: UInt16) -> String {
        lookup(PCI_LOOKUP_DEVICE.rawValue, Int32(vendorID), Int32(deviceID))
    }

    /// `Ethernet controller` for class 0x0200 (class and subclass, no programming interface).
    public func className(classID: UInt16) -> String {
        lookup(PCI_LOOKUP_CLASS.rawValue, Int32(classID))
    }

    /// The subsystem vendor's name, as lspci's `SVendor`.
    public func subsystemVendorName(subsystemVendorID: UInt16) -> String {
        lookup(PCI_LOOKUP_SUBSYSTEM.rawValue | PCI_LOOKUP_VENDOR.rawValue, Int32(subsystemVendorID))
    }

    /// The subsystem's name, as lspci's `SDevice`.
    public func subsystemName(vendorID: UInt16, deviceID: UInt16, subsystemVendorID: UInt16, subsystemDeviceID: UInt16) -> String {
        lookup(
            PCI_LOOKUP_SUBSYSTEM.rawValue | PCI_LOOKUP_DEVICE.rawValue,
            Int32(vendorID), Int32(deviceID), Int32(subsystemVendorID), Int32(subsystemDeviceID))
    }

    private func lookup(_ flags: UInt32, _ id1: Int32, _ id2: Int32 = 0, _ id3: Int32 = 0, _ id4: Int32 = 0) -> String {
        access.withLock { handle -> String in
            guard let handle else { return "" }
            // lspci uses 128 bytes; longer names would be cut the same way there.
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
                guard let name = deckhand_pci_lookup_name(handle, buffer.baseAddress, 256, Int32(flags), id1, id2, id3, id4) else {
                    return ""
                }
                return String(cString: name)
            }
        }
    }
}
