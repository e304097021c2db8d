import Foundation
import Hardware
import Testing

/// The sections beyond PCI and disks on the machine running the tests, against the
/// standard tools: `ip -d link`, `lscpu`, `free`, `df`, `lsusb`, `lspci -n`.
@Suite struct RealMachineSections {
    static func hostInfo() throws -> HostInfo {
        try RealMachineTests.hostInfo()
    }

    /// `Key:   value` lines (lscpu, /proc files) as a dictionary.
    static func colonFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test func networkInterfacesMatchIpLink() throws {
        struct Link: Decodable {
            var ifname: String
            var address: String?
            var operstate: String
            var mtu: Int
            var parentbus: String?
            var parentdev: String?
        }
        func ipLink() throws -> [Link] {
            try JSONDecoder().decode([Link].self, from: Data(TestSupport.output(["ip", "-j", "-d", "link", "show"]).utf8))
        }
        // Other engines on the machine add and remove veths: what ip shows both before
        // and after must be there, and nothing that ip showed neither time.
        let before = try ipLink()
        let interfaces = try Self.hostInfo().networkInterfaces
        let after = try ipLink()
        let stable = Set(before.map(\.ifname)).intersection(after.map(\.ifname))
        #expect(stable.isSubset(of: interfaces.map(\.name)))
        #expect(Set(interfaces.map(\.name)).isSubset(of: Set(before.map(\.ifname)).union(after.map(\.ifname))))
        #expect(interfaces.map(\.name) == interfaces.map(\.name).sorted())
        for link in after where stable.contains(link.ifname) {
            let interface = try #require(interfaces.first { $0.name == link.ifname })
            #expect(interface.macAddress == link.address)
            #expect(interface.state == link.operstate.lowercased())
            #expect(interface.mtu == link.mtu)
            #expect(interface.virtual == (link.parentbus == nil))
            switch link.parentbus {
            case "pci": #expect(interface.pciAddress == link.parentdev)
            case "virtio":
                // A virtio device's own parent is the PCI function that carries it.
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/sys/bus/virtio/devices/\(link.parentdev ?? "")")
                #expect(interface.pciAddress == target.split(separator: "/").dropLast().last.map(String.init))
            default: #expect(interface.pciAddress == nil)
            }
            let speed = (try? String(contentsOfFile: "/sys/class/net/\(link.ifname)/speed", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(interface.speed == speed.flatMap { $0 >= 0 ? $0 : nil })
        }
    }

    @Test func cpuMatchesLscpuAndMemoryMatchesFree() throws {
        let cpu = try #require(try Self.hostInfo().processors)
        let lscpu = Self.colonFields(try TestSupport.output(["lscpu"]))
        let sockets = try #require(lscpu["Socket(s)"].flatMap { Int($0) })
        #expect(cpu.model == lscpu["Model name"])
        #expect(cpu.vendor == lscpu["Vendor ID"])
        #expect(cpu.sockets == sockets)
        #expect(cpu.cores == sockets * (lscpu["Core(s) per socket"].flatMap { Int($0) } ?? 0))
        #expect(cpu.threads == lscpu["CPU(s)"].flatMap { Int($0) })
        #expect(cpu.numaNodes == lscpu["NUMA node(s)"].flatMap { Int($0) })
        // free -b: `Mem:  total used free ...`
        let memLine = try #require(try TestSupport.output(["free", "-b"]).split(separator: "\n").first { $0.hasPrefix("Mem:") })
        #expect(cpu.memory == memLine.split(separator: " ").dropFirst().first.flatMap { UInt64($0) })
    }

    /// Every filesystem df lists by default, with its size exactly and its use within
    /// what other builds on the machine write between the two looks.
    @Test func filesystemsMatchDf() throws {
        func df() throws -> [[String]] {
            try TestSupport.output(["df", "-B1", "--output=source,fstype,size,used,avail,target"])
                .split(separator: "\n").dropFirst().map { $0.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true).map(String.init) }
        }
        // Other engines on the machine mount and unmount container filesystems: what df
        // lists both before and after must be there, and nothing df listed neither time.
        let before = try df()
        let filesystems = try Self.hostInfo().filesystems
        let after = try df()
        let stable = Set(before.map { $0[5] }).intersection(after.map { $0[5] })
        #expect(stable.isSubset(of: filesystems.map(\.mountPoint)))
        #expect(Set(filesystems.map(\.mountPoint)).isSubset(of: Set(before.map { $0[5] }).union(after.map { $0[5] })))
        for row in after where stable.contains(row[5]) {
            let filesystem = try #require(filesystems.first { $0.mountPoint == row[5] })
            #expect(filesystem.source == row[0])
            #expect(filesystem.type == row[1])
            #expect(filesystem.size == UInt64(row[2]))
            let slack = filesystem.size / 100 + 1
            #expect(abs(Int64(filesystem.used) - Int64(row[3])!) <= Int64(slack))
            #expect(abs(Int64(filesystem.available) - Int64(row[4])!) <= Int64(slack))
        }
        // The root filesystem sits on the block device lsblk names for it.
        let root = try #require(filesystems.first { $0.mountPoint == "/" })
        if root.source.hasPrefix("/dev/") {
            let name = try TestSupport.output(["lsblk", "-n", "-o", "KNAME", root.source]).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(root.blockDevice == name)
        }
    }

    @Test func usbMatchesLsusb() throws {
        let devices = try Self.hostInfo().usbDevices
        let lsusb = try TestSupport.lsusb([])
        #expect(devices.count == lsusb.count)
        for line in lsusb {
            // `Bus 001 Device 002: ID 0781:5581 SanDisk Corp. Ultra`
            let parts = line.split(separator: " ", maxSplits: 6)
            #expect(devices.contains {
                $0.bus == Int(parts[1]) && $0.device == Int(parts[3].dropLast()) && "\($0.vendorID):\($0.productID)" == parts[5]
            })
        }
    }

    @Test func gpusAreTheDisplayClassOfLspci() throws {
        let host = try Self.hostInfo()
        let display = try TestSupport.output(["lspci", "-D", "-n"]).split(separator: "\n")
            .filter { $0.split(separator: " ")[1].hasPrefix("03") }.map { String($0.split(separator: " ")[0]) }
        #expect(host.gpus.map(\.address) == display)
    }

    @Test func machineIsDMIWhereReadable() throws {
        let machine = try Self.hostInfo().machine
        let vendor = (try? String(contentsOfFile: "/sys/class/dmi/id/sys_vendor", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(machine?.vendor == vendor)
        #expect(try Self.hostInfo().warnings == nil)
    }
}
