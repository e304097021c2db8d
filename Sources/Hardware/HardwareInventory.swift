/// Reads the host's hardware: one PCI scan, one udev enumeration and a walk of the
/// host's sysfs and procfs per call, with the PCI name database loaded once at
/// construction. Each part degrades on its own: a PCI failure yields no PCI devices,
/// a disk failure no disks, an unreadable attribute one missing field, never a
/// failed answer.
public final class HardwareInventory: Sendable {
    public let hostRoot: HostRoot
    /// Shared with the disk inventory, which names virtio and NVMe vendors with it.
    public let names: PCINameDatabase
    /// Why the names are not the host's pci.ids, if they are not.
    let namesWarning: String?

    /// Prepares an inventory of the host at `hostRoot` (`HostRoot.detect()` in the agent).
    /// A host pci.ids that libpci cannot parse (a broken package, or planted) does not
    /// stop the agent: names come from this system's own pci.ids, else are numbers (as
    /// lspci's without one), and `Warnings` say so. Throws only when libpci cannot even
    /// be allocated.
    public init(hostRoot: HostRoot = .system) throws(HardwareError) {
        self.hostRoot = hostRoot
        let hostFile = hostRoot.pciIDsFile
        do {
            self.names = try PCINameDatabase(idsFile: hostFile)
            self.namesWarning = nil
        } catch .pciUnavailable(let problem) {
            let own = hostRoot.ownPCIIDsFile.flatMap { $0 == hostFile ? nil : $0 }
            if let own, let names = try? PCINameDatabase(idsFile: own) {
                self.names = names
                self.namesWarning = "pci.ids at \(hostFile ?? "libpci's default") cannot be read (\(problem)): PCI names from \(own)"
            } else {
                // A file that is not there is no error to libpci: every name is then a number.
                self.names = try PCINameDatabase(idsFile: "/nonexistent/pci.ids")
                self.namesWarning = "pci.ids at \(hostFile ?? "libpci's default") cannot be read (\(problem)): PCI names are numbers"
            }
        }
    }

    /// The host's hardware now. Blocking (sysfs reads, device probes: a few
    /// milliseconds), so call it off an event loop, or use `HostInfoCache`.
    public func collect() -> HostInfo {
        let pciDevices = (try? PCIBus(sysfsDirectory: hostRoot.pciSysfsDirectory).devices(names: names)) ?? []
        let mounts = MountTable(hostRoot: hostRoot).filesystems()
        let disks = (try? DiskInventory(hostRoot: hostRoot).disks(names: names)) ?? (disks: [], unprobed: [])
        var warnings = hostRoot.warnings + (namesWarning.map { [$0] } ?? [])
        warnings += mounts.unanswered.map {
            "mount point \($0) did not answer statvfs within \(Int(MountTable.callLimit)) s (a hung NFS or FUSE server?): left out of Filesystems"
        }
        warnings += disks.unprobed.map {
            "disk \($0) did not answer its probe within \(Int(DiskInventory.probeLimit)) s (a disk in error recovery, or whose server is gone?): listed with what udev recorded"
        }
        return HostInfo(
            pciDevices: pciDevices,
            physicalDisks: disks.disks,
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
