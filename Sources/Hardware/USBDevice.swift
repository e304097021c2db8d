/// One USB device (not interface), named as `lsusb` names it: the hwdb's vendor and
/// product names, else the strings the device itself reports.
public struct USBDevice: Sendable, Hashable, Codable {
    /// Bus and device numbers, as lsusb's `Bus 001 Device 002`.
    public var bus: Int
    public var device: Int
    /// Vendor and product ids as four lowercase hex digits.
    public var vendorID: String
    public var productID: String
    /// The vendor's name from udev's hwdb (`SanDisk Corp.`), or the device's manufacturer string.
    public var vendor: String
    /// The product's name from udev's hwdb (`Ultra`), or the device's product string.
    public var name: String
    /// The strings the device reports about itself, when it has them.
    public var manufacturer: String?
    public var product: String?
    /// Negotiated speed in Mb/s as sysfs says (`480`, `5000`).
    public var speed: String?
    /// `bDeviceClass` as two hex digits (`09` for a hub, `00` when set per interface).
    public var classID: String?
    /// The kernel driver bound to the device (`usb` for most, `hub`...).
    public var driver: String?
    /// The sysfs name (`1-1.2`), which says where the device is plugged.
    public var port: String

    public init(
        bus: Int, device: Int, vendorID: String, productID: String, vendor: String, name: String,
        manufacturer: String? = nil, product: String? = nil, speed: String? = nil, classID: String? = nil,
        driver: String? = nil, port: String
    ) {
        self.bus = bus
        self.device = device
        self.vendorID = vendorID
        self.productID = productID
        self.vendor = vendor
        self.name = name
        self.manufacturer = manufacturer
        self.product = product
        self.speed = speed
        self.classID = classID
        self.driver = driver
        self.port = port
    }

    enum CodingKeys: String, CodingKey {
        case bus = "Bus"
        case device = "Device"
        case vendorID = "VendorID"
        case productID = "ProductID"
        case vendor = "Vendor"
        case name = "Name"
        case manufacturer = "Manufacturer"
        case product = "Product"
        case speed = "Speed"
        case classID = "ClassID"
        case driver = "Driver"
        case port = "Port"
    }
}
