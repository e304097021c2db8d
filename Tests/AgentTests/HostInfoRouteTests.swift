import Foundation
import Testing
@testable import Agent

@Suite("GET /host/info")
struct HostInfoRouteTests {
    @Test("503 unless host management is enabled")
    func disabled() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            for path in ["/host/info", "/v2/host/info"] {
                let reply = try agent.request("GET", path, key: key)
                #expect(reply.status == 503)
                #expect((try reply.json() as? [String: String])?["message"] == "Host management capability disabled")
            }
        }
    }

    @Test("the original's JSON shape, equal to what deckhand host-info prints for this machine")
    func enabled() async throws {
        try await TestAgent.with(hostManagement: true, hostRoot: "/") { agent async throws in
            let reply = try agent.request("GET", "/v2/host/info", key: SigningKey())
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "application/json")
            let body = try #require(try reply.json() as? [String: Any])
            // The original's keys are all there; Deckhand's additions are the documented
            // ones (optional ones left out when unknown); nothing else.
            #expect(Set(body.keys) == ["PCIDevices", "PhysicalDisks"])
            let pci = try #require(body["PCIDevices"] as? [[String: Any]])
            let disks = try #require(body["PhysicalDisks"] as? [[String: Any]])
            let pciKeys: Set<String> = [
                "Vendor", "Name", "Address", "Class", "ClassID", "VendorID", "DeviceID", "SubsystemVendor",
                "SubsystemName", "SubsystemVendorID", "SubsystemDeviceID", "Revision", "Driver",
            ]
            let diskKeys: Set<String> = [
                "Vendor", "Size", "Name", "Model", "Serial", "WWN", "Rotational", "Removable", "Transport",
                "PartitionTable", "PartitionTableUUID", "Filesystem", "Partitions",
            ]
            for device in pci {
                #expect(Set(device.keys).isSuperset(of: ["Vendor", "Name", "Address", "Class", "ClassID", "VendorID", "DeviceID"]))
                #expect(Set(device.keys).isSubset(of: pciKeys), "\(device.keys.sorted())")
            }
            for disk in disks {
                #expect(Set(disk.keys).isSuperset(of: ["Vendor", "Size", "Name", "Partitions"]))
                #expect(Set(disk.keys).isSubset(of: diskKeys), "\(disk.keys.sorted())")
            }
            #expect(!pci.isEmpty)
            for device in pci {
                #expect(device["Vendor"] is String)
                #expect(device["Name"] is String)
                #expect(device["Name"] as? String != "unknown")
            }
            for disk in disks {
                #expect(disk["Vendor"] is String)
                #expect(disk["Size"] is Int)
            }
            let cli = try Command.run(try CommandLineTests.deckhand, ["host-info", "--host-root", "/"])
            #expect(cli.status == 0)
            let printed = try #require(try JSONSerialization.jsonObject(with: cli.stdout) as? [String: Any])
            #expect(NSDictionary(dictionary: printed).isEqual(to: body))
        }
    }
    /// The agent's answer is cached for 5 s (HostInfoCache's time to live), but a udev
    /// event makes it collect again at once. The event comes from a umockdev testbed
    /// (fixtures/hardware/testbed-with-uevents.py) in which the agent runs, never from
    /// the machine's own disks: the fixture disk grows, and says so with "change".
    @Test("a udev change event on a disk refreshes the cached answer before its time to live")
    func udevChangeEventRefreshes() throws {
        let hardware = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/hardware")
        let sda = "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
        let grown: UInt64 = 2 * 7_814_037_168  // sectors: twice the fixture's 4 TB
        let agent = try AgentProcess(
            environment: [
                "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": hardware.appendingPathComponent("host-root").path,
                "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            ],
            launcher: [
                "umockdev-wrapper", "/usr/bin/python3", hardware.appendingPathComponent("testbed-with-uevents.py").path,
                hardware.appendingPathComponent("sata-hdd.umockdev").path, sda, "size", String(grown), "--",
            ])
        defer { agent.stop() }
        let key = SigningKey()
        func diskSize() throws -> UInt64? {
            let reply = try Curl.request("GET", agent.baseURL + "/v2/host/info", headers: key.headers())
            #expect(reply.status == 200, "\(reply.text)")
            let disks = try #require(try reply.json() as? [String: Any])["PhysicalDisks"] as? [[String: Any]]
            return (disks?.first { $0["Name"] as? String == "sda" }?["Size"] as? NSNumber)?.uint64Value
        }
        #expect(try diskSize() == 4_000_787_030_016)
        let cached = Date()
        #expect(kill(agent.pid, SIGUSR1) == 0)
        var size = try diskSize()
        while size != grown * 512 && Date() < cached.addingTimeInterval(4) {
            usleep(100_000)
            size = try diskSize()
        }
        #expect(size == grown * 512, "still \(size.map(String.init) ?? "none") \(Date().timeIntervalSince(cached))s after the first answer")
    }
}

