/// One PCI function, named as `lspci` names it.
/// `Vendor` and `Name` are the original agent's fields; the others are Deckhand's additions.
public struct PCIDevice: Sendable, Hashable, Codable {
    /// Vendor name from pci.ids, or lspci's fallback (`Vendor 1234`).
    public var vendor: String
    /// Device name from pci.ids, or lspci's fallback (`Device 0d57`), never "unknown".
    public var name: String
    /// Domain, bus, device and function, as `lspci -D` prints it (`0000:00:02.0`).
    public var address: String
    /// Class name as lspci prints it (`Ethernet controller`, `Unassigned class [ffff]`).
    public var className: String
    /// Class and subclass as four hex digits (`0200`).
    public var classID: String
    /// Vendor id as four lowercase hex digits.
    public var vendorID: String
    /// Device id as four lowercase hex digits.
    public var deviceID: String
    /// Subsystem vendor name, when the device reports a subsystem.
    public var subsystemVendor: String?
    /// Subsystem device name, when the device reports a subsystem.
    public var subsystemName: String?
    /// Subsystem vendor id, when the device reports a subsystem.
    public var subsystemVendorID: String?
    /// Subsystem device id, when the device reports a subsystem.
    public var subsystemDeviceID: String?
    /// Revision as two hex digits.
    public var revision: String
    /// The kernel driver bound to the device, if any.
    public var driver: String?

    public init(
        vendor: String, name: String, address: String, className: String, classID: String,
        vendorID: String, deviceID: String, subsystemVendor: String? = nil, subsystemName: String? = nil,
        subsystemVendorID: String? = nil, subsystemDeviceID: String? = nil, revision: String,
        driver: String? = nil
    ) {
        self.vendor = vendor
        self.name = name
        self.address = address
        self.className = className
        self.classID = classID
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.subsystemVendor = subsystemVendor
        self.subsystemName = subsystemName
        self.subsystemVendorID = subsystemVendorID
        self.subsystemDeviceID = subsystemDeviceID
        self.revision = revision
        self.driver = driver
    }

    enum CodingKeys: String, CodingKey {
        case vendor = "Vendor"
        case name = "Name"
        case address = "Address"
        case className = "Class"
        case classID = "ClassID"
        case vendorID = "VendorID"
        case deviceID = "DeviceID"
        case subsystemVendor = "SubsystemVendor"
        case subsystemName = "SubsystemName"
        case subsystemVendorID = "SubsystemVendorID"
        case subsystemDeviceID = "SubsystemDeviceID"
        case revision = "Revision"
        case driver = "Driver"
    }
}

extension PCIDevice {
    /// PCI base class 03: VGA, XGA, 3D and other display controllers (GPUs).
    public var isDisplayController: Bool { classID.hasPrefix("03") }
}
