import Foundation
import TestCommands

/// Deckhand deployed on the lab Swarm the way deploy/README.md says: the image that
/// `scripts/test` built loaded into every node's engine, then the docker CLI run on
/// the manager (node1). Every service, stack and network named with `track` is
/// removed by `remove()`, which waits until the nodes' port 9001 is free again.
final class SwarmDeployment {
    let swarm: LabSwarm
    private var stacks: [String] = []
    private var services: [String] = []
    private var networks: [String] = []

    /// Checks that nothing listens on the nodes' port 9001 and loads the image.
    init() throws {
        swarm = try LabSwarm()
        try swarm.requirePortsFree()
        try Self.loadImage(on: swarm)
    }

    /// The image tar that `scripts/test` saves after `scripts/build-image`.
    static var imageTar: String {
        get throws {
            guard let path = ProcessInfo.processInfo.environment["DECKHAND_TEST_IMAGE_TAR"], FileManager.default.fileExists(atPath: path) else {
                throw TestSetupError("DECKHAND_TEST_IMAGE_TAR does not name the deckhand image tar (scripts/test makes it with scripts/build-image and docker save): run the suite with scripts/test")
            }
            return path
        }
    }

    /// `docker load` on every node, as the README's `docker save | ssh node docker load`.
    static func loadImage(on swarm: LabSwarm) throws {
        let tar = try imageTar
        for node in swarm.nodes {
            let loaded = try swarm.engine(node, ["load", "-i", tar], timeout: 120)
            guard loaded.status == 0, loaded.output.contains("deckhand:latest") else {
                throw TestSetupError("docker load on \(node.name) failed (\(loaded.status)): \(loaded.output) \(loaded.errorOutput)")
            }
        }
    }

    /// What `remove()` must take down; say it before creating them, so that a failure
    /// half-way still cleans up.
    func track(stack: String? = nil, services: [String] = [], networks: [String] = []) {
        if let stack { stacks.append(stack) }
        self.services += services
        self.networks += networks
    }

    /// The docker CLI on the manager, as a user there runs it.
    func docker(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> CommandResult {
        try Command.run("docker", arguments, environment: cliEnvironment.merging(environment) { $1 }, timeout: timeout)
    }

    /// A shell script (e.g. a block of deploy/README.md) on the manager.
    func shell(_ script: String, environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> CommandResult {
        try Command.run("sh", ["-euc", script], environment: cliEnvironment.merging(environment) { $1 }, timeout: timeout)
    }

    private var cliEnvironment: [String: String] {
        ["DOCKER_HOST": "unix://" + swarm.manager.socket, "DOCKER_CLI_HINTS": "false"]
    }

    /// One request to a node's published port, signed with `key` (and `secret`).
    func request(_ node: LabSwarm.Node, _ path: String, method: String = "GET", key: SigningKey, secret: String? = nil,
                 headers: [String: String] = [:], body: Data? = nil) throws -> HTTPReply {
        try Curl.request(method, "https://\(node.address):9001" + path,
                         headers: key.headers(secret: secret).merging(headers) { $1 }, body: body, extra: ["--max-time", "15"])
    }

    /// The Swarm tasks of `service` that should be running: container ID by node.
    func runningTasks(_ service: String) throws -> [String: String] {
        let listed = try docker(["service", "ps", "--filter", "desired-state=running", "--no-trunc",
                                 "--format", "{{.Node}} {{.CurrentState}} {{.ID}}", service])
        var tasks: [String: String] = [:]
        for line in listed.output.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            if fields.count >= 3, fields[1] == "Running" { tasks[fields[0]] = fields.last }
        }
        return tasks
    }

    /// Waits until `service` runs a task on every node and every node's agent lists
    /// all the nodes' agents; on time-out the error carries the tasks and the logs.
    func waitForCluster(service: String, key: SigningKey, secret: String? = nil, timeout: TimeInterval = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var waitingFor = "tasks"
        while Date() < deadline {
            if (try? runningTasks(service))?.count == swarm.nodes.count {
                waitingFor = "agents"
                let formed = swarm.nodes.allSatisfy { node in
                    guard let reply = try? request(node, "/agents", key: key, secret: secret), reply.status == 200 else { return false }
                    return (try? reply.json() as? [[String: Any]])?.count == swarm.nodes.count
                }
                if formed { return }
            }
            usleep(500_000)
        }
        let tasks = (try? docker(["service", "ps", "--no-trunc", service]))?.output ?? "?"
        let logs = (try? docker(["service", "logs", "--raw", "--tail", "30", service], timeout: 20))
        throw TestSetupError("\(service): no cluster of \(swarm.nodes.count) after \(Int(timeout)) s (waiting for \(waitingFor))\n\(tasks)\nlogs:\n\(logs?.output ?? "")\(logs?.errorOutput ?? "")")
    }

    /// Removes what was tracked and waits until no task container is left and the
    /// nodes' port 9001 is free. Never throws: it runs after failed tests too.
    func remove() {
        for stack in stacks { _ = try? docker(["stack", "rm", stack]) }
        for service in services { _ = try? docker(["service", "rm", service]) }
        let deadline = Date().addingTimeInterval(60)
        for node in swarm.nodes {
            while Date() < deadline {
                let left = (try? swarm.engine(node, ["ps", "-aq", "--filter", "label=com.docker.swarm.service.id"]))?.output ?? ""
                let answering = (try? Curl.request("GET", "https://\(node.address):9001/ping", extra: ["--max-time", "2"])) != nil
                if left.isEmpty && !answering { break }
                usleep(300_000)
            }
        }
        // Networks go once their tasks are gone (`stack rm` may have been too early).
        var leftNetworks = networks
        for stack in stacks {
            let listed = (try? docker(["network", "ls", "-q", "--filter", "label=com.docker.stack.namespace=\(stack)"]))?.output ?? ""
            leftNetworks += listed.split(separator: "\n").map(String.init)
        }
        for network in leftNetworks {
            while Date() < deadline {
                let removed = try? docker(["network", "rm", network])
                let gone = removed?.errorOutput.contains("not found") == true || removed?.errorOutput.contains("No such network") == true
                if removed?.status == 0 || gone { break }
                usleep(500_000)
            }
        }
        stacks = []
        services = []
        networks = []
    }
}

/// The shell blocks of deploy/README.md, so that the test runs what users read.
enum DeployReadme {
    static var text: String {
        get throws {
            try String(contentsOf: LabSwarm.repositoryRoot.appendingPathComponent("deploy/README.md"), encoding: .utf8)
        }
    }

    /// The first ```sh block after the line containing `marker`.
    static func block(after marker: String) throws -> String {
        let lines = try text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.contains(marker) }),
              let open = lines[start...].firstIndex(where: { $0.hasPrefix("```sh") }),
              let close = lines[(open + 1)...].firstIndex(where: { $0.hasPrefix("```") }) else {
            throw TestSetupError("deploy/README.md has no sh block after \"\(marker)\"")
        }
        return lines[(open + 1)..<close].joined(separator: "\n")
    }
}
