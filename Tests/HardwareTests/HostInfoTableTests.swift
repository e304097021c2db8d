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

    @Test func commandPrintsTheSameTable() throws {
        let json = try TestSupport.hostInfo(fixture: "sata-hdd")
        let table = try TestSupport.hostInfo(fixture: "sata-hdd", ["--table"])
        #expect(table == HostInfoTable(try JSONDecoder().decode(HostInfo.self, from: Data(json.utf8))).render())
    }
}
