/// One physical disk. `Vendor` and `Size` are the original agent's fields;
/// the others are Deckhand's additions. Unknown optional fields are left out of the JSON.
public struct PhysicalDisk: Sendable, Hashable, Codable {
    /// The vendor: the device's own vendor string, or for a PCI-attached disk
    /// (virtio, NVMe) the vendor's name from pci.ids. Empty when nothing says.
    public var vendor: String
    /// Capacity in bytes.
    public var size: UInt64
    /// Kernel name (`sda`, `nvme0n1`, `vda`).
    public var name: String
    public var model: String?
    public var serial: String?
    /// World Wide Name (or NVMe EUI/NGUID) where the device reports one.
    public var wwn: String?
    /// True for spinning media as the kernel reports it (virtio disks report true).
    public var rotational: Bool
    /// True for removable media (USB sticks, card readers).
    public var removable: Bool
    public var transport: DiskTransport?
    /// Partition table type as libblkid names it (`gpt`, `dos`), nil without a table.
    public var partitionTable: String?
    /// Partition table UUID (GPT disk GUID, or the DOS disk identifier).
    public var partitionTableUUID: String?
    /// A filesystem on the whole disk (no partition table), as found by libblkid or udev.
    public var filesystem: Filesystem?
    /// The disk's partitions, ordered by number; empty when there are none.
    public var partitions: [DiskPartition]

    public init(
        vendor: String, size: UInt64, name: String, model: String? = nil, serial: String? = nil,
        wwn: String? = nil, rotational: Bool, removable: Bool, transport: DiskTransport? = nil,
        partitionTable: String? = nil, partitionTableUUID: String? = nil, filesystem: Filesystem? = nil,
        partitions: [DiskPartition] = []
    ) {
        self.vendor = vendor
        self.size = size
        self.name = name
        self.model = model
        self.serial = serial
        self.wwn = wwn
        self.rotational = rotational
        self.removable = removable
        self.transport = transport
        self.partitionTable = partitionTable
        self.partitionTableUUID = partitionTableUUID
        self.filesystem = filesystem
        self.partitions = partitions
    }

    enum CodingKeys: String, CodingKey {
        case vendor = "Vendor"
        case size = "Size"
        case name = "Name"
        case model = "Model"
        case serial = "Serial"
        case wwn = "WWN"
        case rotational = "Rotational"
        case removable = "Removable"
        case transport = "Transport"
        case partitionTable = "PartitionTable"
        case partitionTableUUID = "PartitionTableUUID"
        case filesystem = "Filesystem"
        case partitions = "Partitions"
    }
}
