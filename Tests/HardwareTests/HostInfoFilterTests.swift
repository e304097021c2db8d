import Foundation
import Hardware
import Testing

/// The `filters` of `/host/info` as a value: parsed as Docker's JSON, applied to the
/// `server` fixture's golden answer (NVMe, SATA, a USB stick, two NICs, a GPU).
@Suite struct HostInfoFilterTests {
    static let server: HostInfo = {
        let data = try! Data(contentsOf: TestSupport.fixtures.appendingPathComponent("server.json"))
        return try! JSONDecoder().decode(HostInfo.self, from: data)
    }()

    static func apply(_ json: String, node: String = "node1") throws -> HostInfo {
        try HostInfoFilter(json: json).apply(to: server, nodeName: node)
    }

    @Test func noFiltersChangeNothing() throws {
        #expect(try Self.apply("{}") == Self.server)
        #expect(HostInfoFilter.none.apply(to: Self.server, nodeName: "x") == Self.server)
    }

    @Test func classByNameOrCodeSelectsPCIFunctionsOnly() throws {
        for json in [#"{"class":["VGA compatible controller"]}"#, #"{"class":["0300"]}"#, #"{"class":["0x0300"]}"#, #"{"class":["030000"]}"#] {
            let host = try Self.apply(json)
            #expect(host.pciDevices.map(\.address) == ["0000:01:00.0"], "\(json)")
            #expect(host.gpus.map(\.address) == ["0000:01:00.0"])
            #expect(host.physicalDisks.isEmpty && host.usbDevices.isEmpty && host.networkInterfaces.isEmpty)
        }
        // A base class alone takes in every subclass: the GPU and its HDMI audio are 03xx and 0403.
        #expect(try Self.apply(#"{"class":["03"]}"#).pciDevices.map(\.classID) == ["0300"])
        #expect(try Self.apply(#"{"class":["03","04"]}"#).pciDevices.map(\.classID).sorted() == ["0300", "0403"])
    }

    @Test func vendorByNameIdOrPartOfTheName() throws {
        let samsung = try Self.apply(#"{"vendor":["samsung"]}"#)
        #expect(samsung.physicalDisks.map(\.name) == ["nvme0n1"])
        #expect(samsung.pciDevices.map(\.vendorID) == ["144d"])
        #expect(try Self.apply(#"{"vendor":["0781"]}"#).usbDevices.map(\.name) == ["Ultra"])
        #expect(try Self.apply(#"{"vendor":["10de"]}"#).gpus.count == 1)
    }

    @Test func driverSelectsPCINICsAndUSB() throws {
        let host = try Self.apply(#"{"driver":["i40e","e1000e"]}"#)
        #expect(host.networkInterfaces.map(\.name) == ["eno1", "enp2s0f0"])
        #expect(host.pciDevices.map(\.driver) == ["e1000e", "i40e"])
        #expect(host.physicalDisks.isEmpty)
    }

    @Test func transportAndMinimumSizeTogether() throws {
        #expect(try Self.apply(#"{"transport":["nvme"]}"#).physicalDisks.map(\.name) == ["nvme0n1"])
        #expect(try Self.apply(#"{"transport":["sata","usb"]}"#).physicalDisks.map(\.name) == ["sda", "sdb"])
        // sda is 4.0 TB; the NVMe disk 1 TB.
        #expect(try Self.apply(#"{"min-size":["2TB"]}"#).physicalDisks.map(\.name) == ["sda"])
        #expect(try Self.apply(#"{"min-size":["1000204886016"]}"#).physicalDisks.map(\.name) == ["nvme0n1", "sda"])
        #expect(try Self.apply(#"{"transport":["nvme"],"min-size":["2TB"]}"#).physicalDisks.isEmpty)
        #expect(try Self.apply(#"{"min-size":["931G"]}"#).physicalDisks.map(\.name) == ["nvme0n1", "sda"])
        #expect(try Self.apply(#"{"min-size":["932GiB"]}"#).physicalDisks.map(\.name) == ["sda"])
    }

    @Test func nodeKeepsOrEmptiesTheWholeAnswer() throws {
        #expect(try Self.apply(#"{"node":["NODE1","node2"]}"#, node: "node1") == Self.server)
        #expect(try Self.apply(#"{"node":["node2"]}"#, node: "node1") == HostInfo())
        let both = try Self.apply(#"{"node":["node1"],"transport":["nvme"]}"#, node: "node1")
        #expect(both.physicalDisks.map(\.name) == ["nvme0n1"] && both.processors == Self.server.processors)
    }

    @Test func dockersOlderMapFormIsAccepted() throws {
        #expect(try Self.apply(#"{"transport":{"nvme":true,"sata":false}}"#).physicalDisks.map(\.name) == ["nvme0n1"])
    }

    @Test func badFiltersNameWhatIsWrong() {
        #expect(throws: HostInfoFilterError.unknownKey("colour")) { try HostInfoFilter(json: #"{"colour":["red"]}"#) }
        #expect((try? HostInfoFilter(json: #"{"colour":["red"]}"#)) == nil)
        for malformed in ["{", "[]", #"{"vendor":"Samsung"}"#, #"{"vendor":[1]}"#, "null", ""] {
            #expect(throws: HostInfoFilterError.self, "\(malformed)") { try HostInfoFilter(json: malformed) }
        }
        #expect(throws: HostInfoFilterError.invalidValue(key: "transport", value: "floppy", accepted: "nvme, sata, scsi, usb, virtio, mmc")) {
            try HostInfoFilter(json: #"{"transport":["floppy"]}"#)
        }
        for size in ["big", "1XB", "-1", "99999999999999999999", "20000000PB"] {
            #expect(throws: HostInfoFilterError.self, "\(size)") { try HostInfoFilter(json: #"{"min-size":["\#(size)"]}"#) }
        }
        #expect(HostInfoFilterError.unknownKey("colour").description.contains("'colour'"))
    }
}
