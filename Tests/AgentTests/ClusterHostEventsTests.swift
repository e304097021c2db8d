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

    /// The fleet's stream follows the membership, and names every gap: a member whose
    /// agent restarts is named unreachable, reopened after the back-off and named
    /// reachable; a member whose connection drops is reopened from its last line, so what
    /// happened in between comes from its history; a member cut off (its stream merely
    /// hangs) is let go once the membership drops it and taken up again when it rejoins,
    /// from its last line too.
    /// After each, that member's own events arrive again, tagged with it.
    @Test("the fleet's event stream follows its members: a restarted one reopened, a cut-off one left and rejoined, each gap named")
    func fleetHostEventsFollowMembers() throws {
        let lab = try LabCluster(probeInterval: 1, memberTimeout: 2, environment: ["CAP_HOST_MANAGEMENT=1", "DECKHAND_HOST_ROOT=/"], extraMembers: 1)
        defer { lab.stop() }
        let (node1, node2, node3) = (lab.nodes[0], lab.nodes[1], lab.nodes[2])
        let extra = lab.extraMembers[0]
        #expect(extra.node.name == node1.name)
        let fleet = try EventStreamClient("https://\(node2.address):9001/v2/cluster/host/events", key: lab.key)
        #expect(fleet.head()?.hasPrefix("HTTP/1.1 200") == true)
        usleep(1_000_000)
        func notice(_ action: String, _ name: String, after: Int = 0, timeout: TimeInterval) -> [String: Any]? {
            fleet.line(after: after, timeout: timeout) { $0["Action"] as? String == action && $0["NodeName"] as? String == name }
        }
        /// A device made in `node`'s namespace reaches the stream tagged `tag`.
        func deviceEvent(on node: LabCluster.Node, tagged tag: String) throws -> Bool {
            let device = "dhfm\(UInt16.random(in: 0...UInt16.max))"
            defer { _ = try? lab.lab(["exec", String(node.index), "ip", "link", "del", device]) }
            let result = try lab.lab(["exec", String(node.index), "ip", "link", "add", device, "type", "veth", "peer", "name", device + "p"])
            #expect(result.status == 0, "\(result.errorOutput)")
            return fleet.line(timeout: 5) { $0["DevName"] as? String == device && $0["NodeName"] as? String == tag } != nil
        }

        // The extra member's agent restarts well within the membership's three probe
        // intervals: still a member, its stream is reopened, not left and joined.
        lab.stopAgent(port: extra.port)
        let down = notice("member-unreachable", extra.name, timeout: 3)
        #expect(down != nil, "\(fleet.lines)")
        try lab.restartAgent(port: extra.port)
        let back = notice("member-reachable", extra.name, timeout: 8)
        #expect(back != nil, "\(fleet.lines)")
        #expect(notice("member-left", extra.name, timeout: 0) == nil, "\(fleet.lines)")
        #expect(try deviceEvent(on: node1, tagged: extra.name), "\(fleet.lines)")

        // Node 3's end of every connection from node 2 is destroyed (`ss -K`), and a device
        // made on node 3 at once, before the back-off is over: the reopened stream resumes
        // just after the last line node 3 sent, so the device's event comes from node 3's
        // history, once.
        #expect(try deviceEvent(on: node3, tagged: node3.name), "\(fleet.lines)")
        let beforeGap = fleet.lines.count
        let gapDevice = "dhgap\(UInt16.random(in: 0...UInt16.max))"
        defer { _ = try? lab.lab(["exec", "3", "ip", "link", "del", gapDevice]) }
        _ = try lab.lab(["exec", "3", "ss", "-K", "src", node3.address, "sport", "=", ":9001", "dst", node2.address])
        let made = try lab.lab(["exec", "3", "ip", "link", "add", gapDevice, "type", "veth", "peer", "name", gapDevice + "p"])
        #expect(made.status == 0, "\(made.errorOutput)")
        #expect(notice("member-unreachable", node3.name, after: beforeGap, timeout: 3) != nil, "\(fleet.lines)")
        #expect(notice("member-reachable", node3.name, after: beforeGap, timeout: 6) != nil, "\(fleet.lines)")
        let filled = fleet.line(after: beforeGap, timeout: 5) {
            $0["DevName"] as? String == gapDevice && $0["Action"] as? String == "add" && $0["NodeName"] as? String == node3.name
        }
        #expect(filled != nil, "the event made in the gap was lost: \(fleet.lines)")
        usleep(500_000)
        let copies = fleet.lines.dropFirst(beforeGap).filter {
            $0?["DevName"] as? String == gapDevice && $0?["Action"] as? String == "add" && $0?["NodeName"] as? String == node3.name
        }
        #expect(copies.count == 1, "\(fleet.lines)")

        // Node 3's link is cut: its stream hangs, no end comes; the membership drops it
        // after three probe intervals, and the stream lets it go.
        let before = fleet.lines.count
        defer { _ = try? lab.lab(["link", "3", "up"]) }
        #expect(try lab.lab(["link", "3", "down"]).status == 0)
        let left = notice("member-left", node3.name, after: before, timeout: 3 * lab.probeInterval + lab.memberTimeout + 4)
        #expect(left != nil, "\(fleet.lines)")
        // A device made on node 3 while it is away comes, from its history, once it rejoins.
        let awayDevice = "dhaway\(UInt16.random(in: 0...UInt16.max))"
        defer { _ = try? lab.lab(["exec", "3", "ip", "link", "del", awayDevice]) }
        #expect(try lab.lab(["exec", "3", "ip", "link", "add", awayDevice, "type", "veth", "peer", "name", awayDevice + "p"]).status == 0)
        #expect(try lab.lab(["link", "3", "up"]).status == 0)
        let joined = notice("member-joined", node3.name, after: before, timeout: 10)
        #expect(joined != nil, "\(fleet.lines)")
        let fromAway = fleet.line(after: before, timeout: 5) {
            $0["DevName"] as? String == awayDevice && $0["Action"] as? String == "add" && $0["NodeName"] as? String == node3.name
        }
        #expect(fromAway != nil, "the event made while node 3 was away was lost: \(fleet.lines)")
        #expect(try deviceEvent(on: node3, tagged: node3.name), "\(fleet.lines)")

        // Every line is one JSON object; no event came twice (a reopened stream resumes
        // after its last line, it does not replay what was sent); nobody else was named.
        #expect(fleet.lines.allSatisfy { $0 != nil })
        let events = fleet.lines.compactMap { $0 }.filter { !(($0["Action"] as? String)?.hasPrefix("member-") ?? true) }
            .map { "\($0["NodeName"] ?? "") \($0["Action"] ?? "") \($0["DevPath"] ?? "") \($0["Time"] ?? "")" }
        #expect(Set(events).count == events.count, "\(events)")
        let named = Set(fleet.lines.compactMap { line in
            (line?["Action"] as? String)?.hasPrefix("member-") == true ? line?["NodeName"] as? String : nil
        })
        #expect(named == [extra.name, node3.name], "\(fleet.lines)")
    }
}
