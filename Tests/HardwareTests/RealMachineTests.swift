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

    /// Every disk field against lsblk (minus the kernel's virtual block device families).
    @Test func diskListMatchesLsblkWithoutVirtualDevices() throws {
        let view = try LsblkView.onMachine()
        #expect(!view.disks.isEmpty)
        try LsblkView.expect(
            Self.hostInfo().physicalDisks, match: view, blindTransports: [.virtio],
            readSysfs: { path in
                (try? String(contentsOfFile: "/sys/\(path)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            })
    }

    @Test func inventoryInProcessAgreesWithTheCommand() throws {
        // On a busy machine, filesystem use changes between two looks and other engines
        // add and remove veths and container mounts; everything else must not change.
        func steady(_ host: HostInfo, _ other: HostInfo) -> HostInfo {
            var host = host
            host.filesystems = host.filesystems.filter { mine in other.filesystems.contains { $0.mountPoint == mine.mountPoint } }
                .map { filesystem in
                    var filesystem = filesystem
                    (filesystem.used, filesystem.available) = (0, 0)
                    return filesystem
                }
            host.networkInterfaces = host.networkInterfaces.filter { mine in other.networkInterfaces.contains { $0.name == mine.name } }
            return host
        }
        let direct = try HardwareInventory(hostRoot: .system).collect()
        let command = try Self.hostInfo()
        #expect(steady(direct, command) == steady(command, direct))
    }
}
