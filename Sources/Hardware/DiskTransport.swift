/// How a disk is attached to the host, as an operator would name it.
public enum DiskTransport: String, Sendable, Hashable, Codable, CaseIterable {
    case nvme
    case sata
    case scsi
    case usb
    case virtio
    case mmc
}
