/// One partition of a physical disk: its place from the kernel, its contents from
/// libblkid (or from the udev database when the device node cannot be opened).
public struct DiskPartition: Sendable, Hashable, Codable {
    /// Kernel name (`sda1`, `nvme0n1p2`).
    public var name: String
    /// Partition number in the table.
    public var number: Int
    /// Size in bytes.
    public var size: UInt64
    /// What the partition holds, when anything recognisable.
    public var filesystem: Filesystem?
    /// The partition entry's UUID (GPT PARTUUID, or `<disk id>-<nn>` on DOS).
    public var partitionUUID: String?
    /// The partition entry's name (GPT only).
    public var partitionLabel: String?

    public init(
        name: String, number: Int, size: UInt64, filesystem: Filesystem? = nil,
        partitionUUID: String? = nil, partitionLabel: String? = nil
    ) {
        self.name = name
        self.number = number
        self.size = size
        self.filesystem = filesystem
        self.partitionUUID = partitionUUID
        self.partitionLabel = partitionLabel
    }

    enum CodingKeys: String, CodingKey {
        case name = "Name"
        case number = "Number"
        case size = "Size"
        case filesystem = "Filesystem"
        case partitionUUID = "PartitionUUID"
        case partitionLabel = "PartitionLabel"
    }
}
