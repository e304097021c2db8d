import ASCIIText

/// The host's network interfaces from `/sys/class/net` under the host root (the
/// host's network namespace, not the agent container's). Each attribute is read on
/// its own: a NIC whose `speed` fails (link down: `EINVAL`) is listed without it.
struct NetworkInventory {
    let hostRoot: HostRoot

    func interfaces() -> [NetworkInterface] {
        let directory = hostRoot.sysfsPath("/class/net")
        return SysfsFiles.list(directory).map { name in
            let path = "\(directory)/\(name)"
            // The class entry links to the device path, which names every bus on the way.
            let devicePath = SysfsFiles.link(path) ?? ""
            let speed = SysfsFiles.attribute("\(path)/speed").flatMap(Int.init).flatMap { $0 >= 0 ? $0 : nil }
            return NetworkInterface(
                name: name,
                macAddress: SysfsFiles.attribute("\(path)/address"),
                driver: SysfsFiles.linkName("\(path)/device/driver"),
                speed: speed,
                state: SysfsFiles.attribute("\(path)/operstate"),
                mtu: SysfsFiles.attribute("\(path)/mtu").flatMap(Int.init),
                pciAddress: devicePath.split(separator: "/").last(where: { isPCIAddress($0) }).map(String.init),
                virtual: !SysfsFiles.exists("\(path)/device")
            )
        }
    }
}

/// `0000:00:1f.6`: domain, bus, device and function as sysfs names a PCI device.
func isPCIAddress(_ text: Substring) -> Bool {
    let bytes = Array(text.utf8)
    guard bytes.count == 12, bytes[4] == UInt8(ascii: ":"), bytes[7] == UInt8(ascii: ":"), bytes[10] == UInt8(ascii: ".") else {
        return false
    }
    return bytes.enumerated().allSatisfy { index, byte in
        [4, 7, 10].contains(index) || ASCII.hexValue(byte) != nil
    }
}
