import Foundation
import Hardware
import Testing

/// The operator table: one row per device, partitions indented under their disk.
@Suite struct HostInfoTableTests {
    @Test func sataFixtureRendersDiskAndPartitions() throws {
        let golden = try Data(contentsOf: TestSupport.fixtures.appendingPathComponent("sata-hdd.json"))
        let text = HostInfoTable(try JSONDecoder().decode(HostInfo.self, from: golden)).render()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("0000:00:1f.2  SATA controller") && $0.hasSuffix("ahci") })
        let disk = try #require(lines.firstIndex { $0.hasPrefix("sda ") })
        #expect(lines[disk].contains("3.6T") && lines[disk].contains("WDC WD40EFRX-68N32N0") && lines[disk].contains("gpt"))
        #expect(lines[disk + 1].hasPrefix("  sda1") && lines[disk + 1].contains("512M") && lines[disk + 1].contains("EFI"))
        #expect(lines[disk + 2].hasPrefix("  sda2") && lines[disk + 2].contains("ext4"))
        #expect(!lines.contains { $0.hasSuffix(" ") })
    }

    @Test func serverFixtureRendersEverySection() throws {
        let golden = try Data(contentsOf: TestSupport.fixtures.appendingPathComponent("server.json"))
        let text = HostInfoTable(try JSONDecoder().decode(HostInfo.self, from: golden)).render()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("2    2       0781:5581  SanDisk Corp.") && $0.hasSuffix("  Ultra         5000M") })
        #expect(lines.contains { $0.hasPrefix("enp2s0f0  3c:fd:fe:a1:b2:c0  i40e") && $0.hasSuffix("0000:02:00.0") })
        #expect(lines.contains("MACHINE  Supermicro, SYS-1029P-WTR, BIOS American Megatrends Inc. 3.4 10/27/2020"))
        #expect(lines.contains("CPU      Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz, 2 sockets, 4 cores, 8 threads, 2 NUMA nodes, 125.5G memory"))
        #expect(!lines.contains { $0.hasSuffix(" ") })
    }

    @Test func commandPrintsTheSameTable() throws {
        let json = try TestSupport.hostInfo(fixture: "sata-hdd")
        let table = try TestSupport.hostInfo(fixture: "sata-hdd", ["--table"])
        #expect(table == HostInfoTable(try JSONDecoder().decode(HostInfo.self, from: Data(json.utf8))).render())
    }
}
