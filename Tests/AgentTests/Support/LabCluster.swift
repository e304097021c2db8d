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
    /// How each of `agents` was started, to start it again.
    private var launchers: [() throws -> ChildProcess] = []
    /// The port of each of `agents`.
    private var agentPorts: [Int] = []
    /// Each agent's standard error, by node index.
    private let logFolder: URL

    /// How the agents of an IPv6 cluster (`scripts/swarm-lab up --ipv6`) find each other:
    /// each listens on its node's IPv6 address only, so no IPv4 is ever used between them.
    enum IPv6Seeds {
        /// `[fd64:6468::11]:9001,…`
        case addresses
        /// The lab's one name for all three (AAAA records only), as `tasks.<service>`.
        case name
    }
    /// Set for an IPv6 cluster.
    let ipv6: IPv6Seeds?

    /// The node name of the second agent in front of node 1's engine, when there is one.
    let twinName: String?
    /// Its port, on node 1's address.
    static let twinPort = 9002

    /// More members than the lab has nodes: agents in front of the nodes' engines in
    /// turn, each answering to its own node name, `node<n>-extra<i>`, on its node's
    /// address at port `extraPorts + i`. As in `bench/cluster-scale.sh`, without its loopback.
    let extraMembers: [(name: String, node: Node, port: Int)]
    static let extraPorts = 9100

    /// Reads the lab's env file (`DECKHAND_TEST_LAB_ENV`) and starts the agents; with
    /// `twinName`, one more agent in front of node 1's engine (on port 9002) that
    /// answers to that node name instead of the engine's. `extraSeeds` join the
    /// cluster address (an impostor's), `secret` is every agent's `AGENT_SECRET`.
    /// `environment` (`NAME=value` items) is added to every agent's.
    /// `extraMembers` agents more (see `extraMembers`) join the cluster.
    init(probeInterval: Double = 1, memberTimeout: Double = 2, twinName: String? = nil, secret: String? = nil, extraSeeds: [String] = [],
         environment: [String] = [], ipv6: IPv6Seeds? = nil, extraMembers: Int = 0) throws {
        swarm = try LabSwarm()
        self.ipv6 = ipv6
        if ipv6 != nil, swarm.nodes.contains(where: { $0.address6 == nil }) || swarm.ipv6Name == nil {
            throw TestSetupError("the lab has no IPv6 addresses: bring it up with scripts/swarm-lab up --ipv6")
        }
        self.probeInterval = probeInterval
        self.memberTimeout = memberTimeout
        self.twinName = twinName
        self.secret = secret
        logFolder = FileManager.default.temporaryDirectory.appendingPathComponent("lab-agents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logFolder, withIntermediateDirectories: true)
        try swarm.requirePortsFree()
        var listeners = swarm.nodes.map { (node: $0, port: 9001, name: [String]()) }
        if let twinName { listeners.append((swarm.nodes[0], Self.twinPort, ["DECKHAND_NODE_NAME=\(twinName)"])) }
        let nodes = swarm.nodes
        self.extraMembers = (0..<extraMembers).map { index in
            let node = nodes[index % nodes.count]
            return (name: "\(node.name)-extra\(index)", node: node, port: Self.extraPorts + index)
        }
        for extra in self.extraMembers { listeners.append((extra.node, extra.port, ["DECKHAND_NODE_NAME=\(extra.name)"])) }
        let seeds = ipv6 == .name ? swarm.ipv6Name!
            : (listeners.map { "\(Self.urlHost($0.node, ipv6: ipv6)):\($0.port)" } + extraSeeds).joined(separator: ",")
        let binary = try BuiltProducts.deckhand
        for (node, port, name) in listeners {
            let logFolder = logFolder
            let swarm = swarm
            let launch = { try Command.spawn(LabSwarm.swarmLab, ["exec", String(node.index), "env",
                                 "AGENT_HOST=\(ipv6 == nil ? node.address : node.address6!)", "AGENT_PORT=\(port)", "AGENT_CLUSTER_ADDR=\(seeds)",
                                 "DECKHAND_PROBE_INTERVAL=\(probeInterval)", "DECKHAND_MEMBER_TIMEOUT=\(memberTimeout)"] + name
                                 + (secret.map { ["AGENT_SECRET=\($0)"] } ?? []) + environment + [
                                 "LOG_LEVEL=WARN", binary, "serve"], environment: ["SWARM_LAB_DIR": swarm.labDirectory],
                                 errorLog: logFolder.appendingPathComponent("\(node.index)-\(port).log").path) }
            agents.append(try launch())
            launchers.append(launch)
            agentPorts.append(port)
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
        try Curl.request(method, "https://\(urlHost(node)):9001" + path, headers: key.headers(secret: secret).merging(headers) { $1 }, body: body,
                         extra: ["-g"])
    }

    /// A console as Portainer opens one: an `sh` exec made in `container` on node
    /// `target` through `node`'s agent, then `/websocket/exec` at `node`'s agent naming
    /// `target` by header or, `byParameter`, by Portainer's `nodeName`. Types `line`
    /// and returns the upgrade's status and what came back until the shell closed it.
    func console(at node: Node, container: String, on target: String, byParameter: Bool = false, line: String) throws
        -> (status: Int, text: String, closed: Bool) {
        let created = try request(node, "POST", "/v1.41/containers/\(container)/exec", key: key,
                                  headers: ["X-PortainerAgent-Target": target, "Content-Type": "application/json"],
                                  body: Data(#"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true}"#.utf8))
        guard let id = (try? created.json() as? [String: Any])?["Id"] as? String else {
            throw TestSetupError("no exec made in \(container) on \(target): \(created.status) \(created.text)")
        }
        let path = byParameter ? "/websocket/exec?nodeName=\(target)&id=\(id)" : "/websocket/exec?id=\(id)"
        let (status, client) = try WebSocketClient.connect(
            host: ipv6 == nil ? node.address : node.address6!, port: 9001, path: path,
            headers: key.headers(secret: secret).merging(byParameter ? [:] : ["X-PortainerAgent-Target": target]) { $1 },
            hostHeader: "\(urlHost(node)):9001")
        guard let console = client else { return (status, "", false) }
        defer { console.close() }
        try console.send(line)
        let result = console.wait { _, closed in closed }
        return (status, result.text, result.closed)
    }

    /// The node's address as its agent listens on it: IPv4, or IPv6 in brackets.
    func urlHost(_ node: Node) -> String { Self.urlHost(node, ipv6: ipv6) }

    static func urlHost(_ node: Node, ipv6: IPv6Seeds?) -> String {
        ipv6 == nil ? node.address : "[\(node.address6!)]"
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

    /// Each node's Swarm role (`manager` or `worker`) by host name, as the Swarm itself
    /// says it (`docker node ls` on node 1's engine).
    func swarmRoles() throws -> [String: String] {
        try engine(nodes[0], ["node", "ls", "--format", "{{.Hostname}} {{if .ManagerStatus}}manager{{else}}worker{{end}}"])
            .output.split(separator: "\n").reduce(into: [String: String]()) { roles, line in
                let words = line.split(separator: " ")
                roles[String(words[0])] = String(words[1])
            }
    }

    /// One container (created, not started) on each node's engine, known only to it,
    /// named `dh-<prefix>-<node>-<random>`: the names by node name. `removeContainers` takes them away.
    func containerOnEachNode(_ prefix: String) throws -> [String: String] {
        var names: [String: String] = [:]
        for node in nodes {
            let name = "dh-\(prefix)-\(node.name)-\(UInt32.random(in: 0...UInt32.max))"
            let created = try engine(node, ["create", "--name", name, "busybox:local", "true"])
            guard created.status == 0 else { throw TestSetupError("no container made on \(node.name): \(created.errorOutput)") }
            names[node.name] = name
        }
        return names
    }

    func removeContainers(_ names: [String: String]) {
        for node in nodes { if let name = names[node.name] { _ = try? engine(node, ["rm", "-f", name]) } }
    }

    /// `scripts/swarm-lab engine|link N …` for fault tests.
    func lab(_ arguments: [String]) throws -> CommandResult {
        try swarm.lab(arguments)
    }

    /// Stops the agent that listens on `port` (an extra member's) and nothing else.
    func stopAgent(port: Int) {
        guard let index = agentPorts.firstIndex(of: port) else { return }
        agents[index].stop()
    }

    /// Starts the agent that listens on `port` again, after `stopAgent`.
    func restartAgent(port: Int) throws {
        guard let index = agentPorts.firstIndex(of: port) else { return }
        agents[index].stop()
        agents[index] = try launchers[index]()
    }

    func stop() {
        agents.forEach { $0.stop() }
        agents = []
        agentPorts = []
        launchers = []
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: logFolder)
    }

}
