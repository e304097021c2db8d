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
}
