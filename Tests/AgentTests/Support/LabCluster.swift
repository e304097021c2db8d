import Foundation
import TestCommands

/// The lab Swarm with one real `deckhand serve` started inside each node's
/// namespaces, listening on the node's own address and talking to the node's own
/// engine.
final class LabCluster {
    typealias Node = LabSwarm.Node

    let swarm: LabSwarm
    var nodes: [Node] { swarm.nodes }
    /// The key every request of the test signs with: the agents associate the first
    /// valid key they see, and the start-up check below is the first.
    let key = SigningKey()
    let probeInterval: Double
    let memberTimeout: Double
    /// `AGENT_SECRET` of every agent, which the test's requests then sign.
    let secret: String?
    private var agents: [ChildProcess] = []
    /// Each agent's standard error, by node index.
    private let logFolder: URL

    /// The node name of the second agent in front of node 1's engine, when there is one.
    let twinName: String?
    /// Its port, on node 1's address.
    static let twinPort = 9002

    /// Reads the lab's env file (`DECKHAND_TEST_LAB_ENV`) and starts the agents; with
    /// `twinName`, one more agent in front of node 1's engine (on port 9002) that
    /// answers to that node name instead of the engine's. `extraSeeds` join the
    /// cluster address (an impostor's), `secret` is every agent's `AGENT_SECRET`.
    /// `environment` (`NAME=value` items) is added to every agent's.
    init(probeInterval: Double = 1, memberTimeout: Double = 2, twinName: String? = nil, secret: String? = nil, extraSeeds: [String] = [],
         environment: [String] = []) throws {
        swarm = try LabSwarm()
        self.probeInterval = probeInterval
        self.memberTimeout = memberTimeout
        self.twinName = twinName
        self.secret = secret
        logFolder = FileManager.default.temporaryDirectory.appendingPathComponent("lab-agents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logFolder, withIntermediateDirectories: true)
        try swarm.requirePortsFree()
        var listeners = swarm.nodes.map { (node: $0, port: 9001, name: [String]()) }
        if let twinName { listeners.append((swarm.nodes[0], Self.twinPort, ["DECKHAND_NODE_NAME=\(twinName)"])) }
        let seeds = (listeners.map { "\($0.node.address):\($0.port)" } + extraSeeds).joined(separator: ",")
        let binary = try BuiltProducts.deckhand
        for (node, port, name) in listeners {
            let process = try Command.spawn(LabSwarm.swarmLab, ["exec", String(node.index), "env",
                                 "AGENT_HOST=\(node.address)", "AGENT_PORT=\(port)", "AGENT_CLUSTER_ADDR=\(seeds)",
                                 "DECKHAND_PROBE_INTERVAL=\(probeInterval)", "DECKHAND_MEMBER_TIMEOUT=\(memberTimeout)"] + name
                                 + (secret.map { ["AGENT_SECRET=\($0)"] } ?? []) + environment + [
                                 "LOG_LEVEL=WARN", binary, "serve"], environment: ["SWARM_LAB_DIR": swarm.labDirectory],
                                 errorLog: logFolder.appendingPathComponent("\(node.index)-\(port).log").path)
            agents.append(process)
        }
        // Up once every agent lists every agent started here.
        let expected = Set(listeners.map { $0.name.first.map { String($0.dropFirst("DECKHAND_NODE_NAME=".count)) } ?? $0.node.name })
        let deadline = Date().addingTimeInterval(30)
        for node in nodes {
            while true {
                if let reply = try? request(node, "GET", "/agents", key: key), reply.status == 200,
                   let listed = try? reply.json() as? [[String: Any]], expected.isSubset(of: listed.compactMap { $0["NodeName"] as? String }) { break }
                guard Date() < deadline else { stop(); throw TestSetupError("the lab agents did not form a cluster") }
                usleep(200_000)
            }
        }
    }

    func request(_ node: Node, _ method: String, _ path: String, key: SigningKey, headers: [String: String] = [:], body: Data? = nil) throws -> HTTPReply {
        try Curl.request(method, "https://\(node.address):9001" + path, headers: key.headers(secret: secret).merging(headers) { $1 }, body: body)
    }

    /// The node names in `node`'s `/agents` answer. Anything but a 200 listing named
    /// agents throws, so that an error can never read as "that node is absent".
    func agentNames(asking node: Node) throws -> [String] {
        let reply = try request(node, "GET", "/agents", key: key)
        guard reply.status == 200, let agents = try reply.json() as? [[String: String]] else {
            throw TestSetupError("/agents on \(node.name) answered \(reply.status): \(reply.text)")
        }
        return try agents.map { agent in
            guard let name = agent["NodeName"] else { throw TestSetupError("an agent without a NodeName: \(agent)") }
            return name
        }
    }

    /// What the agent on `node` (port 9001) has logged so far.
    func log(_ node: Node) -> String {
        (try? String(contentsOf: logFolder.appendingPathComponent("\(node.index)-9001.log"), encoding: .utf8)) ?? ""
    }


    /// The node's engine directly (set-up that is not under test).
    func engine(_ node: Node, _ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try swarm.engine(node, arguments, input: input)
    }

    /// `scripts/swarm-lab engine|link N …` for fault tests.
    func lab(_ arguments: [String]) throws -> CommandResult {
        try swarm.lab(arguments)
    }

    func stop() {
        agents.forEach { $0.stop() }
        agents = []
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: logFolder)
    }

}
