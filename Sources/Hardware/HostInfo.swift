/// The answer of `GET /host/info`: the host's PCI devices and physical disks.
/// Encodes as the original agent's shape (`PCIDevices`, `PhysicalDisks`, never null)
/// with Deckhand's added fields inside each element.
public struct HostInfo: Sendable, Hashable, Codable {
    /// Every PCI function on the host, ordered by address.
    public var pciDevices: [PCIDevice]
    /// The host's physical disks (no loop, ram, zram, device-mapper, md or nbd), ordered by kernel name.
    public var physicalDisks: [PhysicalDisk]

    public init(pciDevices: [PCIDevice] = [], physicalDisks: [PhysicalDisk] = []) {
        self.pciDevices = pciDevices
        self.physicalDisks = physicalDisks
    }

    enum CodingKeys: String, CodingKey {
        case pciDevices = "PCIDevices"
        case physicalDisks = "PhysicalDisks"
    }
}
