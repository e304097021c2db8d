#if canImport(Glibc)
import Glibc
#endif

/// The host's mounted filesystems as `df` lists them: from the host's mount table
/// (`/proc/self/mountinfo` on the system itself; through a host root, the host's
/// init's `proc/1/mountinfo`, since the agent container's own table is not the
/// host's), sized with `statvfs` through the host root, with df's default choices:
/// no pseudo filesystems, none of zero size, one line per device.
struct MountTable {
    let hostRoot: HostRoot

    var mountInfoPath: String? {
        if hostRoot.isSystem { return "/proc/self/mountinfo" }
        let host = hostRoot.path + "/proc/1/mountinfo"
        return SysfsFiles.exists(host) ? host : nil
    }

    /// How long one mount point's `statvfs` and `stat` may take (`BoundedCall`).
    static let callLimit = 2.0

    /// The filesystems, and the mount points left out because they did not answer
    /// within `callLimit` (a hung NFS or FUSE mount).
    func filesystems() -> (filesystems: [MountedFilesystem], unanswered: [String]) {
        guard let path = mountInfoPath, let text = SysfsFiles.read(path) else { return ([], []) }
        var result: [MountedFilesystem] = []
        var unanswered: [String] = []
        var indexByDevice: [UInt: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let entry = Entry(line) else { continue }
            if Self.isPseudo(type: entry.type, source: entry.source) { continue }
            let target = hostRoot.isSystem ? entry.mountPoint : hostRoot.path + entry.mountPoint
            guard let measured = BoundedCall.run("statvfs " + target, within: Self.callLimit, { Measured(target) }) else {
                unanswered.append(entry.mountPoint)
                continue
            }
            guard let measured, measured.blocks > 0 else { continue }
            let filesystem = MountedFilesystem(
                source: entry.source, mountPoint: entry.mountPoint, type: entry.type,
                size: measured.bytes(measured.blocks),
                // A server may say more blocks are free than there are (df's arithmetic is signed).
                used: measured.bytes(measured.blocks >= measured.free ? measured.blocks - measured.free : 0),
                available: measured.bytes(measured.available),
                blockDevice: SysfsFiles.linkName(hostRoot.sysfsPath("/dev/block/\(entry.device)")))
            // As df, by the device `stat` sees at the mount point: a filesystem mounted
            // twice (bind mounts) is listed once, at its shortest mount point, and one
            // mounted over another at the same place replaces the hidden one.
            let device = measured.device
            if let index = indexByDevice[device] {
                if filesystem.mountPoint.count <= result[index].mountPoint.count { result[index] = filesystem }
                continue
            }
            indexByDevice[device] = result.count
            result.append(filesystem)
        }
        return (result, unanswered)
    }

    /// What `statvfs` and `stat` say of a mount point, as the filesystem's server
    /// (FUSE, NFS, SMB…) reported it: nothing in it is trusted to be consistent.
    struct Measured: Sendable {
        var blocks: UInt64
        var free: UInt64
        var available: UInt64
        var unit: UInt64
        var device: UInt

        /// Nil when either call fails.
        init?(_ target: String) {
            var stats = statvfs()
            var status = stat()
            guard statvfs(target, &stats) == 0, stat(target, &status) == 0 else { return nil }
            blocks = UInt64(stats.f_blocks)
            free = UInt64(stats.f_bfree)
            available = UInt64(stats.f_bavail)
            unit = UInt64(stats.f_frsize)
            device = UInt(status.st_dev)
        }

        /// `count` blocks in bytes, `UInt64.max` past it.
        func bytes(_ count: UInt64) -> UInt64 {
            let (bytes, overflow) = count.multipliedReportingOverflow(by: unit)
            return overflow ? .max : bytes
        }
    }

    /// df's "dummy" filesystems, never listed by default.
    static func isPseudo(type: String, source: String) -> Bool {
        let dummy: Set<String> = [
            "autofs", "proc", "subfs", "debugfs", "devpts", "fusectl", "fuse.portal", "mqueue", "rpc_pipefs",
            "sysfs", "devfs", "kernfs", "ignore", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs",
            "securityfs", "pstore", "tracefs", "hugetlbfs", "nsfs", "efivarfs",
        ]
        return dummy.contains(type) || (source == "none" && !type.contains("tmpfs"))
    }

    /// One mountinfo line: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`.
    struct Entry {
        var device: String
        var mountPoint: String
        var type: String
        var source: String

        init?(_ line: Substring) {
            let fields = line.split(separator: " ")
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count else { return nil }
            device = String(fields[2])
            // mountinfo writes space, tab, newline and backslash as octal (`\040`).
            mountPoint = decodeByteEscapes(fields[4], hex: false)
            type = String(fields[dash + 1])
            source = decodeByteEscapes(fields[dash + 2], hex: false)
        }
    }
}
