/// Why a part of the inventory could not be read. The inventory itself degrades
/// (an empty list, the fields udev knows); these surface from the lower-level calls.
public enum HardwareError: Error, Sendable, Hashable, CustomStringConvertible {
    /// libpci could not be initialised or scan the bus.
    case pciUnavailable(String)
    /// libudev could not be initialised.
    case udevUnavailable
    /// A device node or image could not be opened for probing (errno).
    case cannotOpen(path: String, errno: Int32)
    /// libblkid failed on an opened device.
    case probeFailed(path: String)

    public var description: String {
        switch self {
        case .pciUnavailable(let message): "PCI access unavailable: \(message)"
        case .udevUnavailable: "udev unavailable"
        case .cannotOpen(let path, let errno): "cannot open \(path) (errno \(errno))"
        case .probeFailed(let path): "libblkid could not probe \(path)"
        }
    }
}
