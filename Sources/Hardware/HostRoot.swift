#if canImport(Glibc)
import Glibc
#endif

/// Where the hardware inventory reads the host from. In the documented container
/// deployment the host's `/` is bind-mounted at `/host`; each source (sysfs, udev
/// database, device nodes, pci.ids) is taken from under it when present there, and
/// from the agent's own filesystem otherwise. A root of `/` is the real system.
///
/// Under umockdev (`UMOCKDEV_DIR` set) the process's own `/sys` is the recorded
/// testbed, which libudev reads whatever the host root says. So that PCI, network,
/// CPU and USB never come from a different tree than the disks, sysfs is then always
/// the testbed's, a host root's own `sys` is ignored, and `warnings` say so, as they
/// say when `/proc` or the udev database come from outside the testbed.
public struct HostRoot: Sendable, Hashable {
    /// The host's root directory as this process sees it (`/` or `/host`).
    public let path: String
    /// The umockdev testbed directory this process runs in, nil on real hardware.
    public let testbed: String?

    public init(path: String, testbed: String? = HostRoot.processTestbed) {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.path = trimmed.isEmpty ? "/" : trimmed
        self.testbed = testbed
    }

    /// `UMOCKDEV_DIR`, which umockdev-run and umockdev-wrapper set for the process they start.
    public static var processTestbed: String? {
        guard let value = getenv("UMOCKDEV_DIR") else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// The system itself.
    public static let system = HostRoot(path: "/")

    /// `/host` when running in a container that has it, the system otherwise.
    public static func detect() -> HostRoot {
        let inContainer = exists("/.dockerenv") || exists("/run/.containerenv")
        return inContainer && exists("/host/sys") ? HostRoot(path: "/host") : .system
    }

    /// True when reading the real system (no remapping at all).
    var isSystem: Bool { path == "/" }

    /// The absolute path `absolute` under the host root, or nil when the host root lacks it.
    func hostPath(_ absolute: String) -> String? {
        if isSystem { return absolute }
        let candidate = path + absolute
        return Self.exists(candidate) ? candidate : nil
    }

    /// The `bus/pci` directory libpci scans. The container's own `/sys` shows the same
    /// PCI devices, so it is the fallback.
    var pciSysfsDirectory: String {
        sysfsPath("/bus/pci")
    }

    /// `relative` (starting with `/`) under the sysfs every reader uses: the host's
    /// `/sys` when the host root has it, else this process's own; under umockdev
    /// always the testbed's.
    func sysfsPath(_ relative: String) -> String {
        if testbed == nil, let host = hostPath("/sys" + relative) { return host }
        return "/sys" + relative
    }

    /// `relative` under the host's `/proc` when the host root has it, else this process's own.
    func procPath(_ relative: String) -> String {
        hostPath("/proc" + relative) ?? "/proc" + relative
    }

    /// Where sources come from that a reader of the inventory would not expect:
    /// only under umockdev, where the testbed is `/sys` but not `/proc` nor, with a
    /// host root, the udev database. Empty on real hardware.
    public var warnings: [String] {
        guard let testbed else { return [] }
        var result: [String] = []
        if !isSystem, Self.exists(path + "/sys") {
            result.append("umockdev testbed \(testbed) in use: sysfs is read from the testbed, \(path)/sys is ignored")
        }
        if isSystem || !Self.exists(path + "/proc") {
            result.append("umockdev testbed \(testbed) in use: CPU model, memory and mounts are read from this machine's /proc")
        }
        if let udev = foreignUdevDataDirectory {
            result.append("umockdev testbed \(testbed) in use: udev properties of block devices are also read from \(udev)")
        }
        return result
    }

    /// The PCI name database: the host's (Debian `/usr/share/misc`, Red Hat
    /// `/usr/share/hwdata`), else the agent's own, else libpci's built-in default.
    var pciIDsFile: String? {
        let candidates = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"]
        for candidate in candidates {
            if let found = hostPath(candidate), Self.exists(found) { return found }
        }
        if !isSystem {
            for candidate in candidates where Self.exists(candidate) { return candidate }
        }
        return nil
    }

    /// This system's own pci.ids (the agent image's), whatever the host root.
    var ownPCIIDsFile: String? {
        ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"].first(where: Self.exists)
    }

    /// The host's udev database directory, when it is not the one libudev reads anyway.
    var foreignUdevDataDirectory: String? {
        isSystem ? nil : hostPath("/run/udev/data")
    }

    /// The device node to probe for a kernel device node path like `/dev/sda`.
    func deviceNode(_ devnode: String) -> String {
        hostPath(devnode) ?? devnode
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
