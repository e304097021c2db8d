import FoundationEssentials

/// Docker-style filters on a host's inventory (`?filters={"vendor":["Samsung"],"transport":["nvme"]}`),
/// as a value the agent applies on each node, so that a fleet query moves only what
/// matches. As in the Engine API, keys are combined with AND and a key's values with OR.
///
/// A list item is kept when every given key applies to its kind and one of that key's
/// values matches it; an item that has no such attribute (a disk has no driver) does
/// not match. CPU, machine and warnings describe the node and are kept, unless `node`
/// names other nodes, which empties the whole answer.
///
/// | key | matches | applies to |
/// |---|---|---|
/// | `class` | PCI class name (`Display controller`, any case) or class code prefix (`03`, `0302`, `0x0300`) | PCI devices, GPUs |
/// | `vendor` | vendor name containing the value (any case), or the vendor id (`144d`) | PCI devices, GPUs, disks, USB devices |
/// | `driver` | the kernel driver's name | PCI devices, GPUs, USB devices, network interfaces |
/// | `transport` | `nvme`, `sata`, `scsi`, `usb`, `virtio`, `mmc` | disks |
/// | `min-size` | at least this many bytes: `500000000000`, `1TB`, `500GB` (powers of 1000), `1T`, `1TiB`, `512G` (powers of 1024) | disks |
/// | `node` | the node's name (any case) | the whole answer |
public struct HostInfoFilter: Sendable, Hashable {
    public enum Key: String, Sendable, Hashable, CaseIterable {
        case `class`
        case vendor
        case driver
        case transport
        case minSize = "min-size"
        case node
    }

    /// Each key's accepted values; a key absent from here is not filtered on.
    public private(set) var values: [Key: [String]]
    private var minimumSizes: [UInt64] = []

    /// No filtering at all.
    public static let none = HostInfoFilter()

    private init() {
        values = [:]
    }

    /// Filters from the keys and values given, checked as the JSON form is.
    public init(_ given: [String: [String]]) throws(HostInfoFilterError) {
        values = [:]
        for (name, list) in given {
            guard let key = Key(rawValue: name) else { throw .unknownKey(name) }
            switch key {
            case .transport:
                for value in list where DiskTransport(rawValue: value.lowercased()) == nil {
                    throw .invalidValue(key: name, value: value, accepted: DiskTransport.allCases.map(\.rawValue).joined(separator: ", "))
                }
            case .minSize:
                minimumSizes = try list.map { value throws(HostInfoFilterError) in
                    guard let bytes = Self.bytes(value) else {
                        throw .invalidValue(key: name, value: value, accepted: "a size in bytes, or with KB, MB, GB, TB (powers of 1000) or K, M, G, T, KiB... (powers of 1024)")
                    }
                    return bytes
                }
            default:
                break
            }
            // Docker ignores a key given with no values; so does this.
            if !list.isEmpty { values[key] = list }
        }
    }

    /// The `filters` query parameter: a JSON object of string lists, or Docker's older
    /// form of an object of `{"value": true}` maps.
    public init(json: String) throws(HostInfoFilterError) {
        let given: [String: FilterValues]
        do {
            given = try JSONDecoder().decode([String: FilterValues].self, from: Data(json.utf8))
        } catch {
            throw .malformed("filters must be a JSON object of string lists, like {\"vendor\":[\"Samsung\"]}")
        }
        try self.init(given.mapValues(\.list))
    }

    public var isEmpty: Bool { values.isEmpty }

    /// Whether the node called `name` is one the filters ask for.
    public func includesNode(_ name: String) -> Bool {
        guard let nodes = values[.node] else { return true }
        return nodes.contains { $0.lowercased() == name.lowercased() }
    }

    /// `host` with only what matches; `nodeName` is the node that collected it.
    public func apply(to host: HostInfo, nodeName: String) -> HostInfo {
        if isEmpty { return host }
        guard includesNode(nodeName) else { return HostInfo() }
        var result = host
        result.pciDevices = host.pciDevices.filter(matches)
        result.gpus = host.gpus.filter(matches)
        result.physicalDisks = host.physicalDisks.filter(matches)
        result.usbDevices = host.usbDevices.filter(matches)
        result.networkInterfaces = host.networkInterfaces.filter(matches)
        result.filesystems = host.filesystems.filter { _ in itemKeys.isEmpty }
        return result
    }

    /// The keys that select items (all but `node`).
    private var itemKeys: [Key] { values.keys.filter { $0 != .node } }

    func matches(_ device: PCIDevice) -> Bool {
        itemKeys.allSatisfy { key in
            switch key {
            case .class: values[key, default: []].contains { Self.classMatches($0, device) }
            case .vendor: values[key, default: []].contains { Self.vendorMatches($0, name: device.vendor, id: device.vendorID) }
            case .driver: values[key, default: []].contains { $0 == device.driver }
            default: false
            }
        }
    }

    func matches(_ disk: PhysicalDisk) -> Bool {
        itemKeys.allSatisfy { key in
            switch key {
            case .vendor: values[key, default: []].contains { Self.vendorMatches($0, name: disk.vendor, id: nil) }
            case .transport: values[key, default: []].contains { $0.lowercased() == disk.transport?.rawValue }
            case .minSize: minimumSizes.contains { disk.size >= $0 }
            default: false
            }
        }
    }

    func matches(_ device: USBDevice) -> Bool {
        itemKeys.allSatisfy { key in
            switch key {
            case .vendor: values[key, default: []].contains { Self.vendorMatches($0, name: device.vendor, id: device.vendorID) }
            case .driver: values[key, default: []].contains { $0 == device.driver }
            default: false
            }
        }
    }

    func matches(_ interface: NetworkInterface) -> Bool {
        itemKeys.allSatisfy { key in
            key == .driver && values[key, default: []].contains { $0 == interface.driver }
        }
    }

    static func vendorMatches(_ value: String, name: String, id: String?) -> Bool {
        let wanted = value.lowercased()
        if let id, wanted == id || wanted == "0x" + id { return true }
        return !wanted.isEmpty && name.lowercased().contains(wanted)
    }

    /// `Display controller` by name; `03`, `0300`, `0x0300` or `030000` by code.
    static func classMatches(_ value: String, _ device: PCIDevice) -> Bool {
        if value.lowercased() == device.className.lowercased() { return true }
        var code = Substring(value.lowercased())
        if code.hasPrefix("0x") { code = code.dropFirst(2) }
        guard !code.isEmpty, code.count % 2 == 0, code.allSatisfy(\.isHexDigit) else { return false }
        // A six-digit code carries the programming interface, which classID leaves out.
        return device.classID.hasPrefix(code.prefix(4))
    }

    /// `1TB` → 10^12, `1T` and `1TiB` → 2^40, `4096` → 4096; nil when not a size.
    static func bytes(_ text: String) -> UInt64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let number = UInt64(digits) else { return nil }
        let unit = text.dropFirst(digits.count).trimmingPrefix(" ").uppercased()
        let powers: [String: (UInt64, Int)] = [
            "": (1, 0), "B": (1, 0),
            "KB": (1000, 1), "MB": (1000, 2), "GB": (1000, 3), "TB": (1000, 4), "PB": (1000, 5),
            "K": (1024, 1), "M": (1024, 2), "G": (1024, 3), "T": (1024, 4), "P": (1024, 5),
            "KIB": (1024, 1), "MIB": (1024, 2), "GIB": (1024, 3), "TIB": (1024, 4), "PIB": (1024, 5),
        ]
        guard let (base, exponent) = powers[unit] else { return nil }
        var result = number
        for _ in 0..<exponent {
            let (product, overflow) = result.multipliedReportingOverflow(by: base)
            if overflow { return nil }
            result = product
        }
        return result
    }

    /// A key's values in either of Docker's two JSON forms.
    private struct FilterValues: Decodable {
        var list: [String]

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let list = try? container.decode([String].self) {
                self.list = list
            } else {
                // `{"nvme": true}`: the values set to true.
                self.list = try container.decode([String: Bool].self).filter(\.value).map(\.key).sorted()
            }
        }
    }
}

/// Why a `filters` parameter was refused; the agent answers 400 with this text.
public enum HostInfoFilterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not a JSON object of string lists.
    case malformed(String)
    /// A key this inventory does not filter on.
    case unknownKey(String)
    /// A value the key cannot take (a transport that does not exist, a size that is not one).
    case invalidValue(key: String, value: String, accepted: String)

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed filters: \(reason)"
        case .unknownKey(let key):
            "invalid filter '\(key)': the keys are \(HostInfoFilter.Key.allCases.map(\.rawValue).joined(separator: ", "))"
        case .invalidValue(let key, let value, let accepted): "invalid filter '\(key)=\(value)': expected \(accepted)"
        }
    }
}
