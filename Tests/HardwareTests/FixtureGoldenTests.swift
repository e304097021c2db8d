import Foundation
import Hardware
import Testing

/// `deckhand host-info` under umockdev, for every recorded and hand-written device tree,
/// against the golden JSON next to the fixture, and its PCI list against `lspci` under
/// the same tree.
@Suite struct FixtureGoldenTests {
    static let fixtureNames = TestSupport.fixtureNames

    @Test func everyRequiredFixtureIsPresent() {
        #expect(Set(Self.fixtureNames).isSuperset(of: [
            "virtio-vm", "nvme-ssd", "sata-hdd", "usb-stick", "gpu", "nic", "server-board", "server", "broken-attributes",
        ]))
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
        guard let lspci = try TestSupport.lspci(fixture: fixture, ["-mm", "-D", "-i", TestSupport.pinnedPCIIDs]) else {
            #expect(devices.isEmpty, "lspci finds no PCI bus in the tree")
            return
        }
        let expected = lspci.map(TestSupport.machineFields)
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
                let cat = try TestSupport.run(TestSupport.umockdevRun(fixture) + ["cat", "/sys/\(path)"])
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
        #expect(json == #"{"Filesystems":[],"GPUs":[],"NetworkInterfaces":[],"PCIDevices":[],"PhysicalDisks":[],"USBDevices":[]}"#)
    }
}

/// The sections beyond PCI and disks on every fixture tree, each against the tool
/// that reads the same tree (lsusb, lscpu, lspci's class codes) or the sysfs files
/// themselves as `cat` sees them under umockdev.
@Suite struct FixtureSectionTests {
    static func hostInfo(_ fixture: String) throws -> HostInfo {
        try JSONDecoder().decode(HostInfo.self, from: Data(TestSupport.hostInfo(fixture: fixture).utf8))
    }

    /// `Bus 002 Device 002: ID 0781:5581 SanDisk Corp. Ultra`, in lsusb's order.
    @Test(arguments: TestSupport.fixtureNames)
    func usbMatchesLsusb(fixture: String) throws {
        let devices = try Self.hostInfo(fixture).usbDevices
        let lsusb = try TestSupport.lsusb(TestSupport.umockdevRun(fixture)).sorted()
        let ours = devices.map { device in
            let bus = String(repeating: "0", count: 3 - String(device.bus).count) + String(device.bus)
            let number = String(repeating: "0", count: 3 - String(device.device).count) + String(device.device)
            return "Bus \(bus) Device \(number): ID \(device.vendorID):\(device.productID) \(device.vendor) \(device.name)"
        }
        #expect(ours.sorted() == lsusb)
    }

    /// Sockets, cores, threads and NUMA nodes as lscpu counts them on the same tree;
    /// a tree without CPU topology has none of them (lscpu refuses it).
    @Test(arguments: TestSupport.fixtureNames)
    func cpuTopologyMatchesLscpu(fixture: String) throws {
        let cpu = try #require(try Self.hostInfo(fixture).processors)
        let lscpu = try TestSupport.run(TestSupport.umockdevRun(fixture) + ["lscpu"])
        guard lscpu.status == 0 else {
            #expect(cpu.sockets == nil && cpu.cores == nil && cpu.numaNodes == nil)
            return
        }
        let fields = RealMachineSections.colonFields(lscpu.stdout)
        let sockets = try #require(fields["Socket(s)"].flatMap { Int($0) })
        #expect(cpu.sockets == sockets)
        #expect(cpu.cores == sockets * (fields["Core(s) per socket"].flatMap { Int($0) } ?? 0))
        #expect(cpu.threads == fields["CPU(s)"].flatMap { Int($0) })
        #expect(cpu.numaNodes == fields["NUMA node(s)"].flatMap { Int($0) })
    }

    /// Name, MAC, speed, state, MTU and driver as the tree's sysfs files say.
    @Test(arguments: TestSupport.fixtureNames)
    func networkMatchesSysfs(fixture: String) throws {
        let interfaces = try Self.hostInfo(fixture).networkInterfaces
        let script = #"""
            for i in /sys/class/net/*; do
              [ -e "$i" ] || continue
              d=$(readlink "$i/device/driver"); echo "$(basename "$i")|$(cat "$i/address")|$(cat "$i/speed" 2>/dev/null)|$(cat "$i/operstate")|$(cat "$i/mtu")|${d##*/}"
            done
            """#
        let lines = try TestSupport.underFixture(fixture, ["sh", "-c", script]).split(separator: "\n").map(String.init)
        #expect(interfaces.map { "\($0.name)|\($0.macAddress ?? "")|\($0.speed.map(String.init) ?? "")|\($0.state ?? "")|\($0.mtu.map(String.init) ?? "")|\($0.driver ?? "")" } == lines)
    }

    /// GPUs are exactly the PCI functions lspci gives a display class (`03xx`).
    @Test(arguments: TestSupport.fixtureNames)
    func gpusAreLspciDisplayClass(fixture: String) throws {
        let host = try Self.hostInfo(fixture)
        let lspci = try TestSupport.lspci(fixture: fixture, ["-D", "-n"]) ?? []
        let display = lspci.filter { $0.split(separator: " ")[1].hasPrefix("03") }.map { String($0.split(separator: " ")[0]) }
        #expect(host.gpus.map(\.address) == display)
        #expect(host.gpus.allSatisfy { $0.driver != nil })
    }

    /// The machine's DMI fields as `cat` reads them from the tree.
    @Test(arguments: TestSupport.fixtureNames)
    func machineMatchesDMIFiles(fixture: String) throws {
        let machine = try Self.hostInfo(fixture).machine
        let text = try TestSupport.underFixture(fixture, ["sh", "-c", "cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name /sys/class/dmi/id/bios_vendor /sys/class/dmi/id/bios_version 2>/dev/null || true"])
        let lines = text.split(separator: "\n").map(String.init)
        if lines.isEmpty {
            #expect(machine == nil)
        } else {
            #expect([machine?.vendor, machine?.product, machine?.biosVendor, machine?.biosVersion].compactMap { $0 } == lines)
        }
    }

    /// What cannot be read costs a field, never the device (lspci and lsblk list them too).
    @Test func brokenAttributesCostFieldsNotDevices() throws {
        let host = try Self.hostInfo("broken-attributes")
        // 0000:00:1f.6 has no `config` file at all: libpci warns, lspci lists it, so do we.
        let nic = try #require(host.pciDevices.first { $0.address == "0000:00:1f.6" })
        #expect(nic.vendor == "Intel Corporation")
        #expect(nic.driver == "e1000e")
        #expect(host.pciDevices.count == 2)
        // No serial anywhere (no udev ID_SERIAL, no sysfs serial): listed without it.
        let disk = try #require(host.physicalDisks.first)
        #expect(disk.name == "sda" && disk.serial == nil && disk.size == 1_953_525_168 * 512)
        // No `speed` (a down link answers EINVAL): listed without it.
        let interface = try #require(host.networkInterfaces.first)
        #expect(interface.name == "eno1" && interface.speed == nil && interface.state == "down")
        #expect(interface.pciAddress == "0000:00:1f.6")
    }

    /// The fixture host root's /proc gives the model and memory, not the machine's.
    @Test func cpuModelAndMemoryComeFromTheHostRoot() throws {
        let cpu = try #require(try Self.hostInfo("server").processors)
        #expect(cpu.model == "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz")
        #expect(cpu.memory == 131_621_012 * 1024)
        #expect(cpu.sockets == 2 && cpu.cores == 4 && cpu.threads == 8 && cpu.numaNodes == 2)
    }
}
