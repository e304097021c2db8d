import Foundation
import Hardware
import Testing

/// `deckhand host-info` under umockdev, for every recorded and hand-written device tree,
/// against the golden JSON next to the fixture, and its PCI list against `lspci` under
/// the same tree.
@Suite struct FixtureGoldenTests {
    static let fixtureNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: TestSupport.fixtures.path)) ?? []
        return names.filter { $0.hasSuffix(".umockdev") }.map { String($0.dropLast(".umockdev".count)) }.sorted()
    }()

    @Test func everyRequiredFixtureIsPresent() {
        #expect(Set(Self.fixtureNames).isSuperset(of: ["virtio-vm", "nvme-ssd", "sata-hdd", "usb-stick", "gpu", "nic"]))
    }

    @Test(arguments: fixtureNames)
    func jsonMatchesGolden(fixture: String) throws {
        let output = try TestSupport.hostInfo(fixture: fixture)
        let golden = try String(contentsOf: TestSupport.fixtures.appendingPathComponent("\(fixture).json"), encoding: .utf8)
        // Structural comparison first, for a readable failure; then the exact bytes.
        let actual = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8))
        let expected = try JSONDecoder().decode(HostInfo.self, from: Data(golden.utf8))
        #expect(actual == expected)
        #expect(output == golden)
    }

    @Test(arguments: fixtureNames)
    func pciNamesMatchLspciOnTheSameTree(fixture: String) throws {
        let output = try TestSupport.hostInfo(fixture: fixture)
        let devices = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8)).pciDevices
        let lspci = try TestSupport.underFixture(fixture, ["lspci", "-mm", "-D", "-i", TestSupport.pinnedPCIIDs])
        let expected = lspci.split(separator: "\n").map { TestSupport.machineFields(String($0)) }
        #expect(!expected.isEmpty)
        #expect(devices.map(\.address) == expected.map { $0[0] })
        #expect(devices.map(\.className) == expected.map { $0[1] })
        #expect(devices.map(\.vendor) == expected.map { $0[2] })
        #expect(devices.map(\.name) == expected.map { $0[3] })
        // The last two quoted fields are the subsystem vendor and name ("" when none).
        #expect(devices.map { $0.subsystemVendor ?? "" } == expected.map { $0[$0.count - 2] })
        #expect(devices.map { $0.subsystemName ?? "" } == expected.map { $0[$0.count - 1] })
    }

    /// Disks against lsblk under the same tree (LsblkView says what lsblk cannot see).
    @Test(arguments: fixtureNames)
    func diskListMatchesLsblkOnTheSameTree(fixture: String) throws {
        let output = try TestSupport.hostInfo(fixture: fixture)
        let disks = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8)).physicalDisks
        try LsblkView.expect(
            disks, match: LsblkView.underFixture(fixture), blindTransports: [.sata, .scsi, .usb, .virtio],
            readSysfs: { path in
                let cat = try TestSupport.run(["umockdev-run", "-d", TestSupport.fixtures.appendingPathComponent("\(fixture).umockdev").path, "--", "cat", "/sys/\(path)"])
                return cat.status == 0 ? cat.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
            })
    }

    @Test func unknownDeviceUsesLspciFallbackNotUnknown() throws {
        let output = try TestSupport.hostInfo(fixture: "virtio-vm")
        let host = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8))
        #expect(host.pciDevices.first { $0.address == "0000:00:00.0" }?.name == "Device 0d57")
        #expect(!output.contains("unknown"))
        #expect(host.physicalDisks.map(\.vendor) == ["Red Hat, Inc."])
    }

    @Test func emptyListsEncodeAsArraysNeverNull() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(HostInfo()), as: UTF8.self)
        #expect(json == #"{"PCIDevices":[],"PhysicalDisks":[]}"#)
    }
}
