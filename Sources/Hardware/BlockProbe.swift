import CLibBlkid
#if canImport(Glibc)
import Glibc
#endif

/// What libblkid finds on a disk, a partition or an image file: the partition table
/// and its entries, and the filesystem in each entry (or on the whole device),
/// the same values `blkid -p` prints.
public struct BlockProbe: Sendable, Hashable {
    /// `gpt`, `dos`... or nil when there is no partition table.
    public var partitionTable: String?
    /// The table's UUID (GPT disk GUID, DOS disk identifier).
    public var partitionTableUUID: String?
    /// A filesystem found on the whole device (no partition table).
    public var filesystem: Filesystem?
    /// The table's entries, ordered by number.
    public var partitions: [ProbedPartition]

    public init(
        partitionTable: String? = nil, partitionTableUUID: String? = nil, filesystem: Filesystem? = nil,
        partitions: [ProbedPartition] = []
    ) {
        self.partitionTable = partitionTable
        self.partitionTableUUID = partitionTableUUID
        self.filesystem = filesystem
        self.partitions = partitions
    }

    /// Probes the block device or image at `path`: one open, one probe for the table,
    /// one probe per entry at its offset (so partition nodes need not be opened).
    public static func probe(path: String) throws(HardwareError) -> BlockProbe {
        // O_NONBLOCK: an empty CD tray or card reader must fail at once, not hang the request.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }

        guard let probe = blkid_new_probe() else { throw .probeFailed(path: path) }
        defer { blkid_free_probe(probe) }
        guard blkid_probe_set_device(probe, fd, 0, 0) == 0 else { throw .probeFailed(path: path) }
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL)
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_set_partitions_flags(probe, BLKID_PARTS_ENTRY_DETAILS)
        // 1 is "nothing found", -2 "ambivalent" (several signatures): both leave values empty.
        guard blkid_do_safeprobe(probe) >= -2 else { throw .probeFailed(path: path) }

        var result = BlockProbe(
            partitionTable: value(probe, "PTTYPE"),
            partitionTableUUID: value(probe, "PTUUID"),
            filesystem: filesystem(probe)
        )
        // A table is what the disk says (a USB stick's first sectors): libblkid bounds
        // neither its entries' count (a GPT can hold millions, each then probed here) nor
        // their numbers (a Sun label's start is a C int product, negative or past 2⁶³
        // bytes). The kernel shows at most 256 partitions of a disk; entries past the
        // device's end, or whose bytes overflow, are not partitions of it.
        let deviceSize = UInt64(max(blkid_probe_get_size(probe), 0))
        if let list = blkid_probe_get_partitions(probe), blkid_partlist_numof_partitions(list) <= Self.maximumPartitions {
            for index in 0..<blkid_partlist_numof_partitions(list) {
                guard let entry = blkid_partlist_get_partition(list, index),
                    let (start, size) = Self.byteRange(start: blkid_partition_get_start(entry), size: blkid_partition_get_size(entry), within: deviceSize)
                else { continue }
                result.partitions.append(
                    ProbedPartition(
                        number: Int(blkid_partition_get_partno(entry)),
                        offset: start,
                        size: size,
                        partitionUUID: blkid_partition_get_uuid(entry).map { String(cString: $0) },
                        partitionLabel: blkid_partition_get_name(entry).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 },
                        filesystem: filesystemAt(fd: fd, offset: start, size: size)
                    ))
            }
        }
        result.partitions.sort { $0.number < $1.number }
        return result
    }

    /// The most entries of a partition table read: the kernel's own limit per disk.
    static let maximumPartitions: Int32 = 256

    /// A table entry's byte range from its 512-byte sectors, if it lies within the
    /// device's `deviceSize` bytes (0: unknown, then only overflow is checked).
    static func byteRange(start: Int64, size: Int64, within deviceSize: UInt64) -> (start: UInt64, size: UInt64)? {
        guard start >= 0, size >= 0 else { return nil }
        let (startBytes, startOverflow) = UInt64(start).multipliedReportingOverflow(by: 512)
        let (sizeBytes, sizeOverflow) = UInt64(size).multipliedReportingOverflow(by: 512)
        let (end, endOverflow) = startBytes.addingReportingOverflow(sizeBytes)
        guard !startOverflow, !sizeOverflow, !endOverflow, end <= UInt64(Int64.max) else { return nil }
        guard deviceSize == 0 || end <= deviceSize else { return nil }
        return (startBytes, sizeBytes)
    }

    /// Superblock probe of one partition's byte range of the already open device.
    private static func filesystemAt(fd: Int32, offset: UInt64, size: UInt64) -> Filesystem? {
        guard size > 0, let probe = blkid_new_probe() else { return nil }
        defer { blkid_free_probe(probe) }
        guard blkid_probe_set_device(probe, fd, blkid_loff_t(offset), blkid_loff_t(size)) == 0 else { return nil }
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL)
        blkid_probe_enable_partitions(probe, 0)
        guard blkid_do_safeprobe(probe) == 0 else { return nil }
        return filesystem(probe)
    }

    private static func filesystem(_ probe: blkid_probe) -> Filesystem? {
        guard let type = value(probe, "TYPE") else { return nil }
        return Filesystem(type: type, uuid: value(probe, "UUID"), label: value(probe, "LABEL"))
    }

    private static func value(_ probe: blkid_probe, _ name: String) -> String? {
        var data: UnsafePointer<CChar>?
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &data, &length) == 0, let data else { return nil }
        let text = String(cString: data)
        return text.isEmpty ? nil : text
    }
}
