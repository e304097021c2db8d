/// Renders a `HostInfo` as aligned text tables for operators (`deckhand host-info --table`).
public struct HostInfoTable: Sendable {
    public let hostInfo: HostInfo

    public init(_ hostInfo: HostInfo) {
        self.hostInfo = hostInfo
    }

    /// Two tables, PCI devices then disks with their partitions indented below each disk.
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
    }

    static func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
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
