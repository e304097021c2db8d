#if canImport(Glibc)
import Glibc
#endif

/// Where the hardware inventory reads the host from. In the documented container
/// deployment the host's `/` is bind-mounted at `/host`; each source (sysfs, udev
/// database, device nodes, pci.ids) is taken from under it when present there, and
/// from the agent's own filesystem otherwise. A root of `/` is the real system.
public struct HostRoot: Sendable, Hashable {
    /// The host's root directory as this process sees it (`/` or `/host`).
    public let path: String

    public init(path: String) {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.path = trimmed.isEmpty ? "/" : trimmed
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
        hostPath("/sys/bus/pci") ?? "/sys/bus/pci"
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
