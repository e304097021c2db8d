import CLibUdev

/// The host's physical disks from one libudev enumeration of the `block` subsystem,
/// each probed with libblkid for its partition table and filesystems. A device node
/// that cannot be opened (a container without device access) costs only the fields
/// libblkid would have added: what udev recorded is reported instead.
public struct DiskInventory: Sendable {
    public var hostRoot: HostRoot

    public init(hostRoot: HostRoot = .system) {
        self.hostRoot = hostRoot
    }

    /// How long one disk's probe may take (`BoundedCall`): a disk in error recovery, or
    /// one whose server is gone (NBD, iSCSI), blocks its reads for minutes or for good.
    static let probeLimit = 2.0

    /// The physical disks, ordered by kernel name (`names` turns PCI vendor ids of virtio
    /// and NVMe into vendor names), and the device nodes whose probe did not end within
    /// `probeLimit`: those disks are listed with what udev recorded.
    public func disks(names: PCINameDatabase) throws(HardwareError) -> (disks: [PhysicalDisk], unprobed: [String]) {
        guard let udev = udev_new() else { throw .udevUnavailable }
        defer { udev_unref(udev) }
        guard let enumerate = udev_enumerate_new(udev) else { throw .udevUnavailable }
        defer { udev_enumerate_unref(enumerate) }
        udev_enumerate_add_match_subsystem(enumerate, "block")
        udev_enumerate_scan_devices(enumerate)

        var disks: [UdevDevice] = []
        var partitionsByDisk: [String: [UdevDevice]] = [:]
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            entry = udev_list_entry_get_next(current)
            guard let name = udev_list_entry_get_name(current),
                let handle = udev_device_new_from_syspath(udev, name)
            else { continue }
            let device = UdevDevice(handle)
            switch device.devtype {
            case "disk" where Self.isPhysical(device):
                disks.append(device)
            case "partition":
                if let parent = device.parent {
                    partitionsByDisk[parent.syspath, default: []].append(device)
                }
            default:
                break
            }
        }
        let foreignDatabase = hostRoot.foreignUdevDataDirectory.map(UdevDatabase.init(directory:))
        var unprobed: [String] = []
        let described = disks.map { disk in
            let probe = disk.devnode.flatMap { node -> BlockProbe? in
                let path = hostRoot.deviceNode(node)
                guard let probed = BoundedCall.run("probe " + path, within: Self.probeLimit, { try? BlockProbe.probe(path: path) }) else {
                    unprobed.append(node)
                    return nil
                }
                return probed
            }
            return describe(
                disk, probe: probe, partitions: partitionsByDisk[disk.syspath] ?? [], names: names, foreignDatabase: foreignDatabase)
        }
        return (described.sorted { $0.name < $1.name }, unprobed.sorted())
    }

    /// Virtual block devices (loop, ram, zram, dm, md, nbd...) live under
    /// `/devices/virtual`; everything attached to a bus is hardware.
    static func isPhysical(_ device: UdevDevice) -> Bool {
        !device.devpath.hasPrefix("/devices/virtual/")
    }

    private func describe(
        _ disk: UdevDevice, probe: BlockProbe?, partitions: [UdevDevice], names: PCINameDatabase, foreignDatabase: UdevDatabase?
    ) -> PhysicalDisk {
        let properties = DeviceProperties(device: disk, foreignDatabase: foreignDatabase)
        let parent = disk.parent

        var result = PhysicalDisk(
            vendor: vendor(disk, parent: parent, properties: properties, names: names),
            size: bytes(disk),
            name: disk.sysname,
            // udev's model is the full ATA/NVMe string; SCSI's sysfs `model` is cut at 16 characters.
            model: properties.encoded("ID_MODEL") ?? parent?.attribute("model") ?? parent?.attribute("name"),
            serial: properties["ID_SERIAL_SHORT"] ?? parent?.attribute("serial") ?? disk.attribute("serial"),
            wwn: properties["ID_WWN_WITH_EXTENSION"] ?? properties["ID_WWN"] ?? disk.attribute("wwid")
                ?? parent?.attribute("wwid"),
            rotational: disk.attribute("queue/rotational") == "1",
            removable: disk.attribute("removable") == "1",
            transport: transport(disk, properties: properties),
            partitionTable: probe?.partitionTable ?? properties["ID_PART_TABLE_TYPE"],
            partitionTableUUID: probe?.partitionTableUUID ?? properties["ID_PART_TABLE_UUID"],
            filesystem: probe?.filesystem ?? properties.filesystem
        )
        result.partitions = partitions.map { partition in
            let partitionProperties = DeviceProperties(device: partition, foreignDatabase: foreignDatabase)
            let number = Int(partition.attribute("partition") ?? partitionProperties["PARTN"] ?? "") ?? 0
            let probed = probe?.partitions.first { $0.number == number }
            // udev stores the GPT entry name escaped (`\x20`), with no `_ENC` twin.
            return DiskPartition(
                name: partition.sysname,
                number: number,
                size: bytes(partition),
                filesystem: probed?.filesystem ?? partitionProperties.filesystem,
                partitionUUID: probed?.partitionUUID ?? partitionProperties["ID_PART_ENTRY_UUID"],
                partitionLabel: probed?.partitionLabel ?? partitionProperties["ID_PART_ENTRY_NAME"].map(decodeUdevEscapes)
            )
        }
        .sorted { $0.number < $1.number }
        return result
    }

    /// sysfs `size` is always in 512-byte units, whatever the logical block size. It is
    /// what the device reported (a USB stick's READ CAPACITY), unchecked by the kernel:
    /// a size past 2⁶⁴ bytes is unknown (0), as a missing one is, not a trap.
    private func bytes(_ device: UdevDevice) -> UInt64 {
        guard let sectors = device.attribute("size").flatMap({ UInt64($0) }) else { return 0 }
        let (bytes, overflow) = sectors.multipliedReportingOverflow(by: 512)
        return overflow ? 0 : bytes
    }

    /// The device's own vendor string (SCSI, USB), a PCI vendor id named from pci.ids
    /// (virtio's `0x1af4`), udev's `ID_VENDOR`, or the PCI controller's vendor (NVMe).
    private func vendor(
        _ disk: UdevDevice, parent: UdevDevice?, properties: DeviceProperties, names: PCINameDatabase
    ) -> String {
        if let own = parent?.attribute("vendor") {
            if let id = pciID(own) { return names.vendorName(vendorID: id) }
            return own
        }
        if let udevVendor = properties.encoded("ID_VENDOR") { return udevVendor }
        if let id = disk.pciAncestorVendorID { return names.vendorName(vendorID: id) }
        return ""
    }

    private func transport(_ disk: UdevDevice, properties: DeviceProperties) -> DiskTransport? {
        let subsystems = disk.ancestorSubsystems
        if subsystems.contains("nvme") { return .nvme }
        if subsystems.contains("virtio") { return .virtio }
        if subsystems.contains("mmc") { return .mmc }
        if subsystems.contains("usb") { return .usb }
        if subsystems.contains("scsi") {
            // libata disks sit under an `ataN` host in the device path.
            return properties["ID_BUS"] == "ata" || disk.devpath.contains("/ata") ? .sata : .scsi
        }
        return properties["ID_BUS"].flatMap(DiskTransport.init(rawValue:))
    }
}
