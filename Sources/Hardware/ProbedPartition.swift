/// One entry of a partition table as libblkid reads it.
public struct ProbedPartition: Sendable, Hashable {
    /// The entry's number (`1` for `sda1`).
    public var number: Int
    /// Byte offset of the partition on the device.
    public var offset: UInt64
    /// Size in bytes.
    public var size: UInt64
    /// GPT PARTUUID, or `<disk id>-<nn>` on DOS.
    public var partitionUUID: String?
    /// GPT partition name.
    public var partitionLabel: String?
    /// The filesystem inside, if recognised.
    public var filesystem: Filesystem?

    public init(
        number: Int, offset: UInt64, size: UInt64, partitionUUID: String? = nil, partitionLabel: String? = nil,
        filesystem: Filesystem? = nil
    ) {
        self.number = number
        self.offset = offset
        self.size = size
        self.partitionUUID = partitionUUID
        self.partitionLabel = partitionLabel
        self.filesystem = filesystem
    }
}
