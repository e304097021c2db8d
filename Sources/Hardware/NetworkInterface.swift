/// One network interface of the host, as `ip -d link` and `/sys/class/net` show it.
public struct NetworkInterface: Sendable, Hashable, Codable {
    /// Kernel name (`eth0`, `enp3s0`).
    public var name: String
    /// Hardware address (`02:fc:00:00:00:01`), when the interface has one.
    public var macAddress: String?
    /// The kernel driver of the device behind the interface (`e1000e`, `virtio_net`).
    public var driver: String?
    /// Link speed in Mb/s; nil when the link is down or the driver does not say.
    public var speed: Int?
    /// The kernel's operational state (`up`, `down`, `unknown`...).
    public var state: String?
    public var mtu: Int?
    /// The PCI device behind the interface (`0000:00:1f.6`), also through virtio.
    public var pciAddress: String?
    /// True for interfaces with no device behind them (bridges, veth, loopback...).
    public var virtual: Bool

    public init(
        name: String, macAddress: String? = nil, driver: String? = nil, speed: Int? = nil, state: String? = nil,
        mtu: Int? = nil, pciAddress: String? = nil, virtual: Bool
    ) {
        self.name = name
        self.macAddress = macAddress
        self.driver = driver
        self.speed = speed
        self.state = state
        self.mtu = mtu
        self.pciAddress = pciAddress
        self.virtual = virtual
    }

    enum CodingKeys: String, CodingKey {
        case name = "Name"
        case macAddress = "MACAddress"
        case driver = "Driver"
        case speed = "Speed"
        case state = "State"
        case mtu = "MTU"
        case pciAddress = "PCIAddress"
        case virtual = "Virtual"
    }
}
