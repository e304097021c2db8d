import Foundation
import Hardware
import Testing

/// "Where it reads": with a host root, the host's pci.ids and udev database are used,
/// and what the host root lacks (here its /sys) comes from the agent's own view.
@Suite struct HostRootTests {
    @Test func hostPciIdsAndUdevDatabaseAreUsed() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let misc = root.appendingPathComponent("usr/share/misc")
        let udevData = root.appendingPathComponent("run/udev/data")
        try FileManager.default.createDirectory(at: misc, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: udevData, withIntermediateDirectories: true)
        let ids = try String(contentsOfFile: TestSupport.pinnedPCIIDs, encoding: .utf8)
            .replacingOccurrences(of: "\n1af4  Red Hat, Inc.\n", with: "\n1af4  Host Root Vendor\n")
        try ids.write(to: misc.appendingPathComponent("pci.ids"), atomically: true, encoding: .utf8)
        try "E:ID_MODEL=Host_Root_Model\nE:ID_MODEL_ENC=Host\\x20Root\\x20Model\nE:ID_WWN=0x5000000000000001\n"
            .write(to: udevData.appendingPathComponent("b254:0"), atomically: true, encoding: .utf8)

        let output = try TestSupport.hostInfo(fixture: "virtio-vm", ["--host-root", root.path])
        let host = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8))
        #expect(host.pciDevices.count == 6)
        #expect(host.pciDevices.first { $0.address == "0000:00:02.0" }?.vendor == "Host Root Vendor")
        let disk = try #require(host.physicalDisks.first)
        #expect(disk.vendor == "Host Root Vendor")
        #expect(disk.model == "Host Root Model")
        #expect(disk.wwn == "0x5000000000000001")
    }

    /// A host root that has its own `sys` (a `/host` on the machine running the tests)
    /// under umockdev: libudev reads the testbed whatever the host root says, so PCI,
    /// network and CPU must come from the testbed too, never from the machine behind
    /// the host root, and the answer says what was ignored.
    @Test func hostRootSysfsIsIgnoredUnderUmockdevAndSaysSo() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        // The machine's real sysfs, as a /host mount of the machine's root would show it.
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("sys").path, withDestinationPath: "/sys")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("usr/share/misc"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestSupport.pinnedPCIIDs, toPath: root.appendingPathComponent("usr/share/misc/pci.ids").path)

        let output = try TestSupport.hostInfo(fixture: "nic", ["--host-root", root.path])
        let host = try JSONDecoder().decode(HostInfo.self, from: Data(output.utf8))
        let golden = try JSONDecoder().decode(HostInfo.self, from: Data(contentsOf: TestSupport.fixtures.appendingPathComponent("nic.json")))
        #expect(host.pciDevices == golden.pciDevices)
        #expect(host.networkInterfaces == golden.networkInterfaces)
        #expect(host.warnings?.contains { $0.contains("\(root.path)/sys is ignored") } == true, "\(host.warnings ?? [])")
        // Nor does the machine's /proc slip in unannounced when the host root has none.
        #expect(host.warnings?.contains { $0.contains("this machine's /proc") } == true)
    }

    @Test func noWarningsWithoutUmockdev() {
        #expect(HostRoot(path: "/host", testbed: nil).warnings.isEmpty)
        #expect(HostRoot(path: "/", testbed: nil).warnings.isEmpty)
    }

    @Test func trailingSlashIsIgnored() {
        #expect(HostRoot(path: "/host/").path == "/host")
        #expect(HostRoot(path: "/").path == "/")
    }
}
