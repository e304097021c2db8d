import Foundation
import Testing
import TestCommands

/// Every suite that uses the lab Swarm is nested in this one, which runs them one
/// after the other: they all listen on (or deploy to) port 9001 of the same three
/// node addresses, and Swift Testing otherwise runs suites in parallel.
@Suite("On the lab Swarm, one suite at a time", .serialized)
enum LabSuites {}

/// The real 3-node Swarm that `scripts/test` brings up with `scripts/swarm-lab`, as
/// its env file (`DECKHAND_TEST_LAB_ENV`) describes it.
struct LabSwarm {
    struct Node {
        let name: String
        let address: String
        let socket: String
        let index: Int
        /// Its IPv6 address, when the lab is up with `--ipv6`.
        let address6: String?
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var swarmLab: String { repositoryRoot.appendingPathComponent("scripts/swarm-lab").path }

    let nodes: [Node]
    /// The lab's folder, for `scripts/swarm-lab` (SWARM_LAB_DIR).
    let labDirectory: String
    /// With `--ipv6`: one name that resolves to every node's IPv6 address (AAAA only).
    let ipv6Name: String?

    init() throws {
        guard let path = ProcessInfo.processInfo.environment["DECKHAND_TEST_LAB_ENV"],
              let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TestSetupError("DECKHAND_TEST_LAB_ENV does not name a lab env file: run the suite with scripts/test")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        labDirectory = values["LAB_DIR"] ?? ""
        ipv6Name = values["LAB_NAME6"]
        let count = Int(values["LAB_NODES"] ?? "") ?? 0
        nodes = try (1...max(count, 1)).map { index in
            guard let name = values["NODE\(index)_NAME"], let address = values["NODE\(index)_ADDR"], let socket = values["NODE\(index)_SOCK"] else {
                throw TestSetupError("the lab env file lacks node \(index)")
            }
            return Node(name: name, address: address, socket: socket, index: index, address6: values["NODE\(index)_ADDR6"])
        }
    }

    /// The first node: the lab's manager.
    var manager: Node { nodes[0] }

    /// The lab bridge's address in the root namespace (`x.y.z.1` of the nodes' /24):
    /// where a server of the test itself is reachable from every node.
    var bridgeAddress: String {
        nodes[0].address.split(separator: ".").dropLast().joined(separator: ".") + ".1"
    }

    /// Throws when anything answers on a node's port 9001: an agent left by an earlier
    /// run, or another suite's, which the tests would talk to by mistake.
    func requirePortsFree() throws {
        for node in nodes {
            for host in [node.address] + (node.address6.map { ["[\($0)]"] } ?? [])
            where (try? Curl.request("GET", "https://\(host):9001/ping", extra: ["-g", "--max-time", "2"]))?.status == 204 {
                throw TestSetupError("an agent from an earlier run still listens on \(host):9001")
            }
        }
    }

    /// The node's engine directly (set-up that is not under test).
    func engine(_ node: Node, _ arguments: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> CommandResult {
        try Command.run("docker", ["-H", "unix://" + node.socket] + arguments, input: input, timeout: timeout)
    }

    /// `scripts/swarm-lab engine|link|exec N …`.
    func lab(_ arguments: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        try Command.run(Self.swarmLab, arguments, environment: ["SWARM_LAB_DIR": labDirectory], timeout: timeout)
    }
}
