import CLibUdev

/// The host's USB devices from `/sys/bus/usb/devices` under the host root, named
/// through libudev's hwdb exactly as lsusb asks it (`usb:vXXXX*`, `usb:vXXXXpYYYY*`).
struct USBInventory {
    let hostRoot: HostRoot

    func devices() -> [USBDevice] {
        let directory = hostRoot.sysfsPath("/bus/usb/devices")
        let udev = udev_new()
        defer { if let udev { udev_unref(udev) } }
        let hwdb = udev.flatMap { udev_hwdb_new($0) }
        defer { if let hwdb { udev_hwdb_unref(hwdb) } }
        func lookup(_ modalias: String, _ key: String) -> String? {
            guard let hwdb else { return nil }
            var entry = udev_hwdb_get_properties_list_entry(hwdb, modalias, 0)
            while let current = entry {
                if let name = udev_list_entry_get_name(current), String(cString: name) == key,
                    let value = udev_list_entry_get_value(current)
                {
                    return String(cString: value)
                }
                entry = udev_list_entry_get_next(current)
            }
            return nil
        }
        var result: [USBDevice] = []
        // Interfaces (`1-1:1.0`) have a colon; devices and root hubs (`usb1`) do not.
        for port in SysfsFiles.list(directory) where !port.contains(":") {
            let path = "\(directory)/\(port)"
            // A device without readable ids is still listed, with empty ids, rather than dropped.
            let vendorID = SysfsFiles.attribute("\(path)/idVendor")?.lowercased() ?? ""
            let productID = SysfsFiles.attribute("\(path)/idProduct")?.lowercased() ?? ""
            let manufacturer = SysfsFiles.attribute("\(path)/manufacturer")
            let product = SysfsFiles.attribute("\(path)/product")
            let upperVendor = vendorID.uppercased()
            let upperProduct = productID.uppercased()
            result.append(
                USBDevice(
                    bus: SysfsFiles.attribute("\(path)/busnum").flatMap(Int.init) ?? 0,
                    device: SysfsFiles.attribute("\(path)/devnum").flatMap(Int.init) ?? 0,
                    vendorID: vendorID, productID: productID,
                    vendor: (vendorID.isEmpty ? nil : lookup("usb:v\(upperVendor)*", "ID_VENDOR_FROM_DATABASE"))
                        ?? manufacturer ?? "",
                    name: (vendorID.isEmpty
                        ? nil : lookup("usb:v\(upperVendor)p\(upperProduct)*", "ID_MODEL_FROM_DATABASE")) ?? product ?? "",
                    manufacturer: manufacturer, product: product,
                    speed: SysfsFiles.attribute("\(path)/speed"),
                    classID: SysfsFiles.attribute("\(path)/bDeviceClass"),
                    driver: SysfsFiles.linkName("\(path)/driver"),
                    port: port))
        }
        return result.sorted { ($0.bus, $0.device, $0.port) < ($1.bus, $1.device, $1.port) }
    }
}
