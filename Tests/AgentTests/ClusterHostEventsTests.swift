import Foundation
import Testing

extension LabSuites.ClusterTests {
    /// A network device made in node 3's network namespace raises a kernel uevent that
    /// only node 3's agent hears (net devices' uevents stay in their namespace); a client
    /// of node 1's fleet stream must get it, tagged node3, while node 1's own stream does not.
    @Test("hardware events of the fleet: an event on node 3 reaches a client of node 1, tagged")
    func fleetHostEvents() throws {
        let lab = try LabCluster(environment: ["CAP_HOST_MANAGEMENT=1", "DECKHAND_HOST_ROOT=/"])
        defer { lab.stop() }
        let (node1, node3) = (lab.nodes[0], lab.nodes[2])
        let device = "dhev\(UInt16.random(in: 0...UInt16.max))"
        defer { _ = try? lab.lab(["exec", "3", "ip", "link", "del", device]) }
        let fleet = try EventStreamClient("https://\(node1.address):9001/v2/cluster/host/events", key: lab.key)
        let local = try EventStreamClient("https://\(node1.address):9001/v2/host/events", key: lab.key)
        // The target header relays node 3's own stream through node 1.
        let targeted = try EventStreamClient(
            "https://\(node1.address):9001/v2/host/events", key: lab.key, headers: ["X-PortainerAgent-Target": node3.name])
        for client in [fleet, local, targeted] { #expect(client.head()?.hasPrefix("HTTP/1.1 200") == true) }
        // The members' streams open in the background: give them a moment.
        usleep(1_000_000)
        let made = Date()
        let result = try lab.lab(["exec", "3", "ip", "link", "add", device, "type", "veth", "peer", "name", device + "p"])
        #expect(result.status == 0, "\(result.errorOutput)")
        let event = fleet.line(timeout: 5) { $0["DevName"] as? String == device && $0["Action"] as? String == "add" }
        let elapsed = Date().timeIntervalSince(made)
        let found = try #require(event, "node 3's event never reached node 1: \(fleet.lines)")
        #expect(elapsed < 1, "took \(elapsed) s")
        #expect(found["NodeName"] as? String == node3.name)
        #expect(found["Subsystem"] as? String == "net")
        #expect(fleet.lines.allSatisfy { $0 != nil }, "a line that is not a JSON object")
        #expect(fleet.lines.allSatisfy { $0?["Action"] as? String != "member-unreachable" }, "\(fleet.lines)")
        #expect(local.lines.allSatisfy { $0?["DevName"] as? String != device }, "node 1's own stream got node 3's device")
        let relayed = targeted.line(timeout: 2) { $0["DevName"] as? String == device && $0["Action"] as? String == "add" }
        #expect(relayed?["NodeName"] as? String == node3.name, "\(targeted.lines)")
    }
}
