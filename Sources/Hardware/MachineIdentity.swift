/// The machine itself as its firmware describes it in DMI (`/sys/class/dmi/id`).
/// Serial numbers are readable by root only and left out.
public struct MachineIdentity: Sendable, Hashable, Codable {
    public var vendor: String?
    public var product: String?
    public var version: String?
    public var boardVendor: String?
    public var boardName: String?
    public var biosVendor: String?
    public var biosVersion: String?
    public var biosDate: String?

    public init(
        vendor: String? = nil, product: String? = nil, version: String? = nil, boardVendor: String? = nil,
        boardName: String? = nil, biosVendor: String? = nil, biosVersion: String? = nil, biosDate: String? = nil
    ) {
        self.vendor = vendor
        self.product = product
        self.version = version
        self.boardVendor = boardVendor
        self.boardName = boardName
        self.biosVendor = biosVendor
        self.biosVersion = biosVersion
        self.biosDate = biosDate
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vendor = "Vendor"
        case product = "Product"
        case version = "Version"
        case boardVendor = "BoardVendor"
        case boardName = "BoardName"
        case biosVendor = "BIOSVendor"
        case biosVersion = "BIOSVersion"
        case biosDate = "BIOSDate"
    }

    /// The DMI attributes under the host root's sysfs; nil when none is readable
    /// (no DMI on this platform, or a VM that does not provide it).
    static func read(hostRoot: HostRoot) -> MachineIdentity? {
        let directory = hostRoot.sysfsPath("/class/dmi/id")
        func value(_ name: String) -> String? { SysfsFiles.attribute("\(directory)/\(name)") }
        let machine = MachineIdentity(
            vendor: value("sys_vendor"), product: value("product_name"), version: value("product_version"),
            boardVendor: value("board_vendor"), boardName: value("board_name"), biosVendor: value("bios_vendor"),
            biosVersion: value("bios_version"), biosDate: value("bios_date"))
        return machine == MachineIdentity() ? nil : machine
    }
}
