import Hardware
import NIOCore

/// One line of `/v2/host/events`: a hardware event tagged with its node, or a line
/// about the stream itself (`overflow`, `member-unreachable` and the other `member-` lines), as one JSON object and
/// a newline. Unknown fields are left out.
struct HostEventLine: Encodable {
    var nodeName: String
    var action: String
    var time: String
    var subsystem: String?
    var devPath: String?
    var devName: String?
    var devType: String?
    var driver: String?
    var vendor: String?
    var model: String?
    var vendorID: String?
    var modelID: String?
    /// Why, for the stream's own lines.
    var message: String?

    enum CodingKeys: String, CodingKey {
        case nodeName = "NodeName", action = "Action", time = "Time", subsystem = "Subsystem", devPath = "DevPath"
        case devName = "DevName", devType = "DevType", driver = "Driver", vendor = "Vendor", model = "Model"
        case vendorID = "VendorID", modelID = "ModelID", message = "Message"
    }

    /// The stream's own actions, beside udev's.
    static let overflow = "overflow"
    static let memberUnreachable = "member-unreachable"
    static let memberReachable = "member-reachable"
    static let memberJoined = "member-joined"
    static let memberLeft = "member-left"
    static let historyIncomplete = "history-incomplete"
    static let eventsLost = HardwareEvent.eventsLost

    init(_ event: HardwareEvent, nodeName: String) {
        self.nodeName = nodeName
        action = event.action
        time = event.rfc3339Time
        subsystem = event.subsystem
        devPath = event.devPath
        devName = event.devName
        devType = event.devType
        driver = event.driver
        vendor = event.vendor
        model = event.model
        vendorID = event.vendorID
        modelID = event.modelID
    }

    init(notice action: String, nodeName: String, message: String) {
        self.nodeName = nodeName
        self.action = action
        time = HardwareEvent.rfc3339(HardwareEvent.now)
        self.message = message
    }

    /// The line's bytes, newline included, appended to `buffer`.
    func write(to buffer: inout ByteBuffer) {
        // Every field is a string: encoding cannot fail.
        guard let bytes = try? AgentJSON.encode(self) else { return }
        buffer.writeBytes(bytes)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }
}
