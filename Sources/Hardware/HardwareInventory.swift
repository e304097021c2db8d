/// Reads the host's hardware: one PCI scan, one udev enumeration and a walk of the
/// host's sysfs and procfs per call, with the PCI name database loaded once at
/// construction. Each part degrades on its own: a PCI failure yields no PCI devices,
/// a disk failure no disks, an unreadable attribute one missing field, never a
/// failed answer.
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
        let pciDevices = (try? PCIBus(sysfsDirectory: hostRoot.pciSysfsDirectory).devices(names: names)) ?? []
        let mounts = MountTable(hostRoot: hostRoot).filesystems()
        let warnings = hostRoot.warnings + mounts.unanswered.map {
            "mount point \($0) did not answer statvfs within \(Int(MountTable.callLimit)) s (a hung NFS or FUSE server?): left out of Filesystems"
        }
        return HostInfo(
            pciDevices: pciDevices,
            physicalDisks: (try? DiskInventory(hostRoot: hostRoot).disks(names: names)) ?? [],
            gpus: pciDevices.filter(\.isDisplayController),
            usbDevices: USBInventory(hostRoot: hostRoot).devices(),
            networkInterfaces: NetworkInventory(hostRoot: hostRoot).interfaces(),
            processors: ProcessorSummary.read(hostRoot: hostRoot),
            machine: MachineIdentity.read(hostRoot: hostRoot),
            filesystems: mounts.filesystems,
            warnings: warnings.isEmpty ? nil : warnings
        )
    }
}
