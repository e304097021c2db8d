import Foundation
import Hardware
import Testing

/// `deckhand host-info` on the machine running the tests, against `lspci` and `lsblk`.
@Suite struct RealMachineTests {
    static func hostInfo() throws -> HostInfo {
        let output = try TestSupport.output([TestSupport.deckhand, "host-info", "--host-root", "/"])
        return try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8))
    }

    @Test func pciListMatchesLspci() throws {
        let devices = try Self.hostInfo().pciDevices
        let expected = try TestSupport.output(["lspci", "-mm", "-D"]).split(separator: "\n")
            .map { TestSupport.machineFields(String($0)) }
        #expect(!expected.isEmpty)
        #expect(devices.map(\.address) == expected.map { $0[0] })
        #expect(devices.map(\.vendor) == expected.map { $0[2] })
        #expect(devices.map(\.name) == expected.map { $0[3] })
    }

    @Test func diskListMatchesLsblkWithoutVirtualDevices() throws {
        let disks = try Self.hostInfo().physicalDisks
        // lsblk's own view, minus the kernel's virtual block device families.
        let virtual = ["loop", "ram", "zram", "dm-", "md", "nbd"]
        let expected = try TestSupport.output(["lsblk", "-b", "-d", "-n", "-o", "NAME,SIZE"]).split(separator: "\n")
            .map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            .filter { fields in !virtual.contains { fields[0].hasPrefix($0) } }
            .sorted { $0[0] < $1[0] }
        #expect(!expected.isEmpty)
        #expect(disks.map(\.name) == expected.map { $0[0] })
        #expect(disks.map { String($0.size) } == expected.map { $0[1] })
    }

    @Test func inventoryInProcessAgreesWithTheCommand() throws {
        let direct = try HardwareInventory(hostRoot: .system).collect()
        #expect(direct == (try Self.hostInfo()))
    }
}
