import CPCIShim
#if canImport(Glibc)
import Glibc
#endif

/// One scan of the PCI bus through libpci's sysfs access, named through a
/// `PCINameDatabase`. A fresh libpci handle per scan, so hot-plugged devices appear.
public struct PCIBus: Sendable {
    /// The `.../bus/pci` sysfs directory to scan.
    public var sysfsDirectory: String

    public init(sysfsDirectory: String = "/sys/bus/pci") {
        self.sysfsDirectory = sysfsDirectory
    }

    /// Every PCI function, ordered by address, with lspci's names.
    public func devices(names: PCINameDatabase) throws(HardwareError) -> [PCIDevice] {
        guard let access = deckhand_pci_new(sysfsDirectory, nil) else {
            throw .pciUnavailable("pci_alloc failed")
        }
        defer { pci_cleanup(access) }
        let fill = UInt32(PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS | PCI_FILL_DRIVER)
        var message = [CChar](repeating: 0, count: 256)
        if deckhand_pci_scan(access, fill, &message, Int32(message.count)) != 0 {
            throw .pciUnavailable(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var result: [PCIDevice] = []
        var cursor = access.pointee.devices
        while let device = cursor {
            result.append(describe(device.pointee, driver: pci_get_string_property(device, UInt32(PCI_FILL_DRIVER)), names: names))
            cursor = device.pointee.next
        }
        return result.sorted { $0.address < $1.address }
    }

    private func describe(_ device: pci_dev, driver: UnsafeMutablePointer<CChar>?, names: PCINameDatabase) -> PCIDevice {
        let vendorID = device.vendor_id
        let deviceID = device.device_id
        // lspci shows a subsystem only when the id is neither 0 nor all ones.
        let address = "\(hex(UInt(device.domain_16), 4)):\(hex(UInt(device.bus), 2)):\(hex(UInt(device.dev), 2)).\(device.func)"
        let hasSubsystem = device.subsys_vendor_id != 0 && device.subsys_vendor_id != 0xffff
        return PCIDevice(
            vendor: names.vendorName(vendorID: vendorID),
            name: names.deviceName(vendorID: vendorID, deviceID: deviceID),
            address: address,
            className: names.className(classID: device.device_class),
            classID: hex(UInt(device.device_class), 4),
            vendorID: hex(UInt(vendorID), 4),
            deviceID: hex(UInt(deviceID), 4),
            subsystemVendor: hasSubsystem ? names.subsystemVendorName(subsystemVendorID: device.subsys_vendor_id) : nil,
            subsystemName: hasSubsystem
                ? names.subsystemName(
                    vendorID: vendorID, deviceID: deviceID,
                    subsystemVendorID: device.subsys_vendor_id, subsystemDeviceID: device.subsys_id)
                : nil,
            subsystemVendorID: hasSubsystem ? hex(UInt(device.subsys_vendor_id), 4) : nil,
            subsystemDeviceID: hasSubsystem ? hex(UInt(device.subsys_id), 4) : nil,
            revision: hex(UInt(device.rev_id), 2),
            // libpci resolves the `driver` link with realpath, which fails when the driver
            // directory itself is not visible (umockdev trees, some container /sys views).
            driver: driver.map { String(cString: $0) } ?? SysfsFiles.linkName("\(sysfsDirectory)/devices/\(address)/driver")
        )
    }
}

/// Lowercase hex, zero-padded to `width` digits, as lspci prints ids.
func hex(_ value: UInt, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
