/// Reads the host's hardware: one PCI scan and one udev enumeration per call, with the
/// PCI name database loaded once at construction. Each part degrades on its own: a
/// PCI failure yields no PCI devices, a disk failure no disks, never a failed answer.
public final class HardwareInventory: Sendable {
    public let hostRoot: HostRoot
    /// Shared with the disk inventory, which names virtio and NVMe vendors with it.
    public let names: PCINameDatabase

    /// Prepares an inventory of the host at `hostRoot` (`HostRoot.detect()` in the agent).
    /// Throws only when libpci cannot even be allocated or pci.ids is corrupt.
    public init(hostRoot: HostRoot = .system) throws(HardwareError) {
        self.hostRoot = hostRoot
        self.names = try PCINameDatabase(idsFile: hostRoot.pciIDsFile)
    }

    /// The host's hardware now. Blocking (sysfs reads, device probes: a few
    /// milliseconds), so call it off an event loop, or use `HostInfoCache`.
    public func collect() -> HostInfo {
        HostInfo(
            pciDevices: (try? PCIBus(sysfsDirectory: hostRoot.pciSysfsDirectory).devices(names: names)) ?? [],
            physicalDisks: (try? DiskInventory(hostRoot: hostRoot).disks(names: names)) ?? []
        )
    }
}
