/// One filesystem mounted on the host, sized as `df` sizes it.
public struct MountedFilesystem: Sendable, Hashable, Codable {
    /// What is mounted (`/dev/sda2`, `tmpfs`, `server:/export`).
    public var source: String
    /// Where, as the host sees it (`/`, `/var/lib/docker`).
    public var mountPoint: String
    /// Filesystem type (`ext4`, `xfs`, `tmpfs`, `nfs4`).
    public var type: String
    /// Bytes, as `df -B1` computes them: total, used (total minus free) and
    /// available to unprivileged users.
    public var size: UInt64
    public var used: UInt64
    public var available: UInt64
    /// The block device (disk or partition) it sits on (`sda2`, `nvme0n1p1`), when any.
    public var blockDevice: String?

    public init(
        source: String, mountPoint: String, type: String, size: UInt64, used: UInt64, available: UInt64,
        blockDevice: String? = nil
    ) {
        self.source = source
        self.mountPoint = mountPoint
        self.type = type
        self.size = size
        self.used = used
        self.available = available
        self.blockDevice = blockDevice
    }

    enum CodingKeys: String, CodingKey {
        case source = "Source"
        case mountPoint = "MountPoint"
        case type = "Type"
        case size = "Size"
        case used = "Used"
        case available = "Available"
        case blockDevice = "BlockDevice"
    }
}
