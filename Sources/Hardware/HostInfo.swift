/// The answer of `GET /host/info`: the host's hardware. Encodes as the original
/// agent's shape (`PCIDevices`, `PhysicalDisks`, never null) with Deckhand's added
/// fields inside each element and its added sections beside them. Decoding accepts
/// an answer without the added sections (an older Deckhand, the original agent).
public struct HostInfo: Sendable, Hashable, Codable {
    /// Every PCI function on the host, ordered by address.
    public var pciDevices: [PCIDevice]
    /// The host's physical disks (no loop, ram, zram, device-mapper, md or nbd), ordered by kernel name.
    public var physicalDisks: [PhysicalDisk]
    /// The PCI display controllers (class `03xx`), with their drivers.
    public var gpus: [PCIDevice]
    /// USB devices (root hubs included, as lsusb lists them), ordered by bus and device number.
    public var usbDevices: [USBDevice]
    /// Network interfaces of the host's network namespace, ordered by name.
    public var networkInterfaces: [NetworkInterface]
    /// CPU topology, model and memory size.
    public var processors: ProcessorSummary?
    /// The machine from DMI, when readable.
    public var machine: MachineIdentity?
    /// Mounted filesystems as df lists them, in mount order.
    public var filesystems: [MountedFilesystem]
    /// Where a source did not come from where a reader would expect (see
    /// `HostRoot.warnings`); left out when empty.
    public var warnings: [String]?

    public init(
        pciDevices: [PCIDevice] = [], physicalDisks: [PhysicalDisk] = [], gpus: [PCIDevice] = [],
        usbDevices: [USBDevice] = [], networkInterfaces: [NetworkInterface] = [], processors: ProcessorSummary? = nil,
        machine: MachineIdentity? = nil, filesystems: [MountedFilesystem] = [], warnings: [String]? = nil
    ) {
        self.pciDevices = pciDevices
        self.physicalDisks = physicalDisks
        self.gpus = gpus
        self.usbDevices = usbDevices
        self.networkInterfaces = networkInterfaces
        self.processors = processors
        self.machine = machine
        self.filesystems = filesystems
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey {
        case pciDevices = "PCIDevices"
        case physicalDisks = "PhysicalDisks"
        case gpus = "GPUs"
        case usbDevices = "USBDevices"
        case networkInterfaces = "NetworkInterfaces"
        case processors = "CPU"
        case machine = "Machine"
        case filesystems = "Filesystems"
        case warnings = "Warnings"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        pciDevices = try container.decode([PCIDevice].self, forKey: .pciDevices)
        physicalDisks = try container.decode([PhysicalDisk].self, forKey: .physicalDisks)
        gpus = try container.decodeIfPresent([PCIDevice].self, forKey: .gpus) ?? []
        usbDevices = try container.decodeIfPresent([USBDevice].self, forKey: .usbDevices) ?? []
        networkInterfaces = try container.decodeIfPresent([NetworkInterface].self, forKey: .networkInterfaces) ?? []
        processors = try container.decodeIfPresent(ProcessorSummary.self, forKey: .processors)
        machine = try container.decodeIfPresent(MachineIdentity.self, forKey: .machine)
        filesystems = try container.decodeIfPresent([MountedFilesystem].self, forKey: .filesystems) ?? []
        warnings = try container.decodeIfPresent([String].self, forKey: .warnings)
    }
}
