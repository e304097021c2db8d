/// Renders a `HostInfo` as aligned text tables for operators (`deckhand host-info --table`).
public struct HostInfoTable: Sendable {
    public let hostInfo: HostInfo

    public init(_ hostInfo: HostInfo) {
        self.hostInfo = hostInfo
    }

    /// One table per section: PCI devices, disks with their partitions indented below
    /// each, USB devices, network interfaces, filesystems; then the machine and CPU.
    public func render() -> String {
        let pciRows = hostInfo.pciDevices.map { device in
            [device.address, device.className, device.vendor, device.name, device.driver ?? ""]
        }
        var diskRows: [[String]] = []
        for disk in hostInfo.physicalDisks {
            diskRows.append([
                disk.name, disk.transport?.rawValue ?? "", Self.humanSize(disk.size), disk.vendor, disk.model ?? "",
                disk.serial ?? "", disk.partitionTable ?? disk.filesystem?.type ?? "",
                disk.filesystem?.label ?? "", disk.filesystem?.uuid ?? "",
            ])
            for partition in disk.partitions {
                diskRows.append([
                    "  " + partition.name, "", Self.humanSize(partition.size), "", "", "",
                    partition.filesystem?.type ?? "", partition.filesystem?.label ?? "",
                    partition.filesystem?.uuid ?? "",
                ])
            }
        }
        return "PCI DEVICES\n"
            + Self.table(header: ["ADDRESS", "CLASS", "VENDOR", "DEVICE", "DRIVER"], rows: pciRows)
            + "\nPHYSICAL DISKS\n"
            + Self.table(
                header: ["NAME", "TRANSPORT", "SIZE", "VENDOR", "MODEL", "SERIAL", "TYPE", "LABEL", "UUID"],
                rows: diskRows)
            + "\nUSB DEVICES\n"
            + Self.table(
                header: ["BUS", "DEVICE", "ID", "VENDOR", "NAME", "SPEED"],
                rows: hostInfo.usbDevices.map { device in
                    [String(device.bus), String(device.device), "\(device.vendorID):\(device.productID)", device.vendor, device.name,
                     device.speed.map { $0 + "M" } ?? ""]
                })
            + "\nNETWORK INTERFACES\n"
            + Self.table(
                header: ["NAME", "MAC", "DRIVER", "SPEED", "STATE", "MTU", "PCI"],
                rows: hostInfo.networkInterfaces.map { interface in
                    [interface.name, interface.macAddress ?? "", interface.driver ?? "", interface.speed.map { "\($0)M" } ?? "",
                     interface.state ?? "", interface.mtu.map(String.init) ?? "", interface.pciAddress ?? ""]
                })
            + "\nFILESYSTEMS\n"
            + Self.table(
                header: ["SOURCE", "TYPE", "SIZE", "USED", "AVAIL", "MOUNTED ON", "DEVICE"],
                rows: hostInfo.filesystems.map { filesystem in
                    [filesystem.source, filesystem.type, Self.humanSize(filesystem.size), Self.humanSize(filesystem.used),
                     Self.humanSize(filesystem.available), filesystem.mountPoint, filesystem.blockDevice ?? ""]
                })
            + summary
    }

    /// The machine, CPU and memory in two lines, when known.
    private var summary: String {
        var lines = ""
        if let machine = hostInfo.machine {
            let bios = [machine.biosVendor, machine.biosVersion, machine.biosDate].compactMap { $0 }.joined(separator: " ")
            lines += "\nMACHINE  " + Self.oneLine([machine.vendor, machine.product, bios.isEmpty ? nil : "BIOS " + bios].compactMap { $0 }.joined(separator: ", ")) + "\n"
        }
        if let cpu = hostInfo.processors {
            let counts = [
                cpu.sockets.map { "\($0) sockets" }, cpu.cores.map { "\($0) cores" }, "\(cpu.threads) threads",
                cpu.numaNodes.map { "\($0) NUMA nodes" }, cpu.memory.map { Self.humanSize($0) + " memory" },
            ].compactMap { $0 }
            lines += (lines.isEmpty ? "\n" : "") + "CPU      " + Self.oneLine(([cpu.model].compactMap { $0 } + counts).joined(separator: ", ")) + "\n"
        }
        return lines
    }

    /// `text` as one line: a line break or tab in a device's string (a USB descriptor,
    /// a filesystem label, a mount source: written by whoever made the device) is shown
    /// as `\n` or `\t`, so that it cannot add rows or sections of its own.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\t" || $0 == "\r" }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func table(header: [String], rows: [[String]]) -> String {
        let all = ([header] + rows).map { $0.map(Self.oneLine) }
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            let cells = row.enumerated().map { index, cell in
                cell + String(repeating: " ", count: widths[index] - cell.count)
            }
            var line = cells.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
        .joined(separator: "\n") + "\n"
    }

    /// Binary units as lsblk prints them (`256G`, `1.5T`).
    static func humanSize(_ bytes: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T", "P", "E"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let rounded = (value * 10).rounded() / 10
        let text = rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
        return text + units[unit]
    }
}
