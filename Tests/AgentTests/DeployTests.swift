import Foundation
import Testing
import TestCommands

extension LabSuites {
    /// Deckhand as users deploy it (deploy/README.md): the image on every node of the
    /// lab Swarm, the README's commands run on the manager, and every check made from
    /// outside through each node's published port 9001, as Portainer would.
    @Suite("Deployed as deploy/README.md says, on a real 3-node Swarm", .serialized)
    struct DeployTests {
        static func unique(_ prefix: String) -> String { "dh-\(prefix)-\(UInt32.random(in: 0...UInt32.max))" }
        static let stack = "portainer-agent"

        /// `docker stack deploy` of one of the deploy/ files, as the README writes it, with
        /// `DOCKER_GID` the manager's engine socket's group, as the README exports it.
        static func deployStack(_ deployment: SwarmDeployment, file: String, environment: [String: String] = [:]) throws -> CommandResult {
            let command = "docker stack deploy --resolve-image never -c deploy/\(file) \(stack)"
            #expect(try DeployReadme.text.contains(command), "deploy/README.md no longer says: \(command)")
            #expect(try DeployReadme.text.contains("export DOCKER_GID=$(stat -c %g /var/run/docker.sock)"))
            deployment.track(stack: stack)
            let socketGroup = ["DOCKER_GID": String(try socketGroup(deployment))]
            return try deployment.docker(["stack", "deploy", "--resolve-image", "never", "-c",
                                          LabSwarm.repositoryRoot.appendingPathComponent("deploy/\(file)").path, stack],
                                         environment: socketGroup.merging(environment) { $1 })
        }

        /// The group of the manager's engine socket (every lab node's is the same).
        static func socketGroup(_ deployment: SwarmDeployment) throws -> UInt32 {
            let attributes = try FileManager.default.attributesOfItem(atPath: deployment.swarm.manager.socket)
            return try #require((attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value)
        }

        /// On every node, the agent process of `service`'s task as the kernel shows it
        /// (`/proc/<pid>/status`) runs as `uid` with `group` among its groups and exactly
        /// `capabilities`, on a read-only root filesystem (README, "Least privilege").
        static func expectPrivileges(_ deployment: SwarmDeployment, service: String, uid: UInt32, group: UInt32, capabilities: [String]) throws {
            let mask = try ProcessStatus.mask(capabilities)
            for node in deployment.swarm.nodes {
                let container = try deployment.swarm.engine(node, ["ps", "-q", "--filter", "label=com.docker.swarm.service.name=\(service)"])
                    .output.trimmingCharacters(in: .whitespacesAndNewlines)
                let fields = try deployment.swarm.engine(node, ["inspect", "--format", "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}", container])
                    .output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                let pid = try #require(fields.first.flatMap { Int32($0) }, "\(node.name): no task container of \(service)")
                #expect(fields.last == "true", "\(node.name): the root filesystem is not read-only")
                let status = try ProcessStatus(pid: pid)
                #expect(status.runs(as: uid), "\(node.name): \(status)")
                #expect(status.groups.contains(group) || status.gids.allSatisfy { $0 == group }, "\(node.name): \(status)")
                #expect(status.effectiveCapabilities == mask && status.boundingCapabilities == mask, "\(node.name): \(status)")
            }
        }

        /// `deployStack`, which must succeed.
        static func requireStack(_ deployment: SwarmDeployment, file: String, environment: [String: String] = [:]) throws {
            let deployed = try deployStack(deployment, file: file, environment: environment)
            try #require(deployed.status == 0, "\(deployed.output)\(deployed.errorOutput)")
        }

        @Test("docker network create + service create from the README: overlay addresses, aggregation, targeting, volume browser")
        func serviceByHand() throws {
            let deployment = try SwarmDeployment()
            defer { deployment.remove() }
            deployment.track(services: ["agent"], networks: ["agent_network"])
            // The CLI runs in the machine's namespace, where the nodes' socket is not at
            // /var/run/docker.sock: `stat` is pointed at the manager's.
            let block = try DeployReadme.block(after: "Either create the network and the service by hand:")
            let statLine = "stat -c %g /var/run/docker.sock"
            #expect(block.contains(statLine))
            let created = try deployment.shell(block.replacingOccurrences(of: statLine, with: "stat -c %g \(deployment.swarm.manager.socket)"))
            try #require(created.status == 0, "\(created.output)\(created.errorOutput)")
            let key = SigningKey()
            try deployment.waitForCluster(service: "agent", key: key)
            try Self.checkCluster(deployment, network: "agent_network", key: key, volumeBrowser: false)
            // Without CAP_HOST_MANAGEMENT there is no /host/info.
            #expect(try deployment.request(deployment.swarm.nodes[1], "/host/info", key: key).status == 503)
            // No healthcheck in the command: the image's HEALTHCHECK runs `deckhand health`.
            try Self.expectHealthy(deployment, service: "agent")
            // The image's own user, the socket's group added, no capability.
            try Self.expectPrivileges(deployment, service: "agent", uid: 65532, group: try Self.socketGroup(deployment), capabilities: [])
        }

        @Test("without AGENT_CLUSTER_ADDR each agent derives tasks.<its service> from its container's labels and the cluster forms")
        func derivedClusterAddress() throws {
            let deployment = try SwarmDeployment()
            defer { deployment.remove() }
            // Not the README's names: nothing may be hard-wired to "agent".
            let service = Self.unique("svc"), network = Self.unique("net")
            deployment.track(services: [service], networks: [network])
            let created = try deployment.shell("""
                docker network create --driver overlay --attachable \(network) && \\
                docker service create --name \(service) --network \(network) --mode global \\
                    --publish mode=host,target=9001,published=9001 \\
                    --mount type=bind,src=//var/run/docker.sock,dst=/var/run/docker.sock \\
                    --mount type=bind,src=//var/lib/docker/volumes,dst=/var/lib/docker/volumes \\
                    --group \(try Self.socketGroup(deployment)) --cap-drop ALL --read-only \\
                    --no-resolve-image deckhand:latest
                """)
            try #require(created.status == 0, "\(created.output)\(created.errorOutput)")
            let key = SigningKey()
            // A standalone agent would answer /agents with 503: a listing of every
            // node, at overlay addresses, means each agent found its peers itself.
            try deployment.waitForCluster(service: service, key: key)
            try Self.checkCluster(deployment, network: network, key: key, volumeBrowser: false)
            let logs = try deployment.docker(["service", "logs", "--raw", service])
            #expect((logs.output + logs.errorOutput).contains("tasks.\(service)"), "the agents' logs do not name tasks.\(service)")
        }

        /// Every node's task of `service` is `healthy` by `deckhand health` (the image's
        /// HEALTHCHECK, or the stack file's) within `timeout` seconds, as each node's
        /// engine reports it.
        static func expectHealthy(_ deployment: SwarmDeployment, service: String, timeout: Double = 60) throws {
            let deadline = Date().addingTimeInterval(timeout)
            var status: [String: String] = [:]
            repeat {
                for node in deployment.swarm.nodes {
                    let listed = try deployment.swarm.engine(node, ["ps", "--filter", "label=com.docker.swarm.service.name=\(service)",
                                                                   "--format", "{{.Status}}"])
                    status[node.name] = listed.output.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                if status.values.allSatisfy({ $0.hasSuffix("(healthy)") }) { return }
                usleep(500_000)
            } while Date() < deadline
            Issue.record("\(service) not healthy on every node: \(status)")
        }

        @Test("the host-management stack: /host/info of every node, asked of any node")
        func hostManagementStack() throws {
            let deployment = try SwarmDeployment()
            defer { deployment.remove() }
            try Self.requireStack(deployment, file: "deckhand-stack-host-management.yml")
            let key = SigningKey()
            try deployment.waitForCluster(service: "\(Self.stack)_agent", key: key)
            // The stack file's healthcheck: `deckhand health` in each agent's container.
            try Self.expectHealthy(deployment, service: "\(Self.stack)_agent")
            // Root, with exactly the capabilities the stack file names (README, "Least privilege").
            try Self.expectPrivileges(deployment, service: "\(Self.stack)_agent", uid: 0, group: 0, capabilities: ["DAC_OVERRIDE", "FOWNER"])
            let nodes = deployment.swarm.nodes
            // The host browser, on every node: a root-owned 0600 file of the host, and
            // another user's 0600 file in that user's 0700 folder (DAC_OVERRIDE).
            let hostFolder = "/tmp/dh-deploy-host-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: hostFolder) }
            let made = try Command.run("sh", ["-ec", """
                mkdir -m 0755 \(hostFolder) \(hostFolder)/alice
                printf 'root only\\n' > \(hostFolder)/secret.txt && chmod 0600 \(hostFolder)/secret.txt
                printf 'dear diary\\n' > \(hostFolder)/alice/diary.txt && chmod 0600 \(hostFolder)/alice/diary.txt
                chown -R 1234:1234 \(hostFolder)/alice && chmod 0700 \(hostFolder)/alice
                """])
            try #require(made.status == 0, "\(made.errorOutput)")
            for node in nodes {
                for (path, content) in [("secret.txt", "root only\n"), ("alice/diary.txt", "dear diary\n")] {
                    let file = try deployment.request(node, "/browse/get?path=\(hostFolder)/\(path)", key: key)
                    #expect(file.status == 200 && file.text == content, "\(node.name), \(path): \(file.status) \(file.text)")
                }
            }
            // As root with DAC_OVERRIDE, the volume browser works as well.
            try Self.checkCluster(deployment, network: "\(Self.stack)_agent_network", key: key, volumeBrowser: true)
            // Every lab node has the same /sys, so an answer relayed from the wrong node
            // would still be right: each node's own /run gets udev entries that give its
            // disks a serial naming the node, which its answer must carry. (Seen to fail,
            // one issue per node, with /host/info made not targetable in Route.)
            let markers = try Self.plantSerialMarkers(on: nodes)
            defer { markers.remove() }
            for (index, node) in nodes.enumerated() {
                // What the node itself sees (its own /run, hence its own udev view).
                let local = try deployment.swarm.lab(["exec", String(node.index), try BuiltProducts.deckhand, "host-info", "--host-root", "/"])
                try #require(local.status == 0, "\(local.errorOutput)")
                let expected = try #require(try JSONSerialization.jsonObject(with: local.stdout) as? [String: Any])
                #expect(!((expected["PCIDevices"] as? [Any]) ?? []).isEmpty)
                let serials = try #require(expected["PhysicalDisks"] as? [[String: Any]]).map { $0["Serial"] as? String }
                #expect(!serials.isEmpty && serials.allSatisfy { $0 == markers.serial(of: node) }, "\(node.name): \(serials)")
                let direct = try deployment.request(node, "/host/info", key: key)
                let relayed = try deployment.request(nodes[(index + 1) % nodes.count], "/v2/host/info", key: key,
                                                     headers: ["X-PortainerAgent-Target": node.name])
                for reply in [direct, relayed] {
                    #expect(reply.status == 200, "\(node.name): \(reply.text)")
                    let body = try #require(try reply.json() as? [String: Any], "\(node.name): \(reply.text)")
                    // The node's devices; not its filesystems' use, which moves between two looks.
                    let devices: Set<String> = ["PCIDevices", "PhysicalDisks", "GPUs", "USBDevices", "CPU", "Machine"]
                    #expect(NSDictionary(dictionary: body.filter { devices.contains($0.key) })
                        .isEqual(to: expected.filter { devices.contains($0.key) }), "\(node.name): \(reply.text)")
                }
            }
        }

        /// udev database entries, one set per node in that node's own /run, that give
        /// every disk of the machine the serial `deckhand-<node name>`.
        struct SerialMarkers {
            /// What was created, deepest first, to be removed afterwards.
            var created: [String] = []

            func serial(of node: LabSwarm.Node) -> String { "deckhand-\(node.name)" }

            func remove() {
                for path in created { _ = try? FileManager.default.removeItem(atPath: path) }
            }
        }

        static func plantSerialMarkers(on nodes: [LabSwarm.Node]) throws -> SerialMarkers {
            // The machine's disks, as the nodes' shared /sys shows them: major:minor of each.
            let virtual = ["loop", "ram", "zram", "dm-", "md", "nbd"]
            let disks = try FileManager.default.contentsOfDirectory(atPath: "/sys/block")
                .filter { name in !virtual.contains { name.hasPrefix($0) } }
            let numbers = try disks.map { try String(contentsOfFile: "/sys/block/\($0)/dev", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
            try #require(!numbers.isEmpty, "no disk in /sys/block")
            var markers = SerialMarkers()
            do {
                try plant(in: nodes, numbers: numbers, into: &markers)
            } catch {
                markers.remove()
                throw error
            }
            return markers
        }

        private static func plant(in nodes: [LabSwarm.Node], numbers: [String], into markers: inout SerialMarkers) throws {
            for node in nodes {
                // The node's /run, seen from the root namespace, holds its engine's socket.
                let run = URL(fileURLWithPath: node.socket).deletingLastPathComponent().path
                for folder in ["\(run)/udev", "\(run)/udev/data"] where !FileManager.default.fileExists(atPath: folder) {
                    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
                    markers.created.insert(folder, at: 0)
                }
                for number in numbers {
                    let entry = "\(run)/udev/data/b\(number)"
                    try #require(!FileManager.default.fileExists(atPath: entry), "\(entry) exists already")
                    try "E:ID_SERIAL_SHORT=\(markers.serial(of: node))\n".write(toFile: entry, atomically: false, encoding: .utf8)
                    markers.created.insert(entry, at: 0)
                }
            }
        }

        @Test("the secret stack: refused without AGENT_SECRET; two keys signing the secret accepted everywhere, a wrong secret refused")
        func secretStack() throws {
            let deployment = try SwarmDeployment()
            defer { deployment.remove() }
            let unset = try Self.deployStack(deployment, file: "deckhand-stack-secret.yml", environment: ["AGENT_SECRET": ""])
            #expect(unset.status != 0)
            #expect(unset.errorOutput.contains("AGENT_SECRET"), "\(unset.errorOutput)")
            #expect(try deployment.runningTasks("\(Self.stack)_agent").isEmpty)

            let secret = "deploy-test-\(UUID().uuidString)"
            try Self.requireStack(deployment, file: "deckhand-stack-secret.yml", environment: ["AGENT_SECRET": secret])
            let (first, second, stranger) = (SigningKey(), SigningKey(), SigningKey())
            try deployment.waitForCluster(service: "\(Self.stack)_agent", key: first, secret: secret)
            // The image's user with the socket's group as its own (`user: 65532:${DOCKER_GID}`), no capability.
            try Self.expectPrivileges(deployment, service: "\(Self.stack)_agent", uid: 65532, group: try Self.socketGroup(deployment), capabilities: [])
            for node in deployment.swarm.nodes {
                for key in [second, first] {
                    let reply = try deployment.request(node, "/v1.41/containers/json?all=1", key: key, secret: secret)
                    #expect(reply.status == 200, "\(node.name): \(reply.text)")
                    #expect(reply.headers["x-portaineragent-unreachable-nodes"] == nil)
                    #expect(Self.nodeNames(in: try reply.json()) == Set(deployment.swarm.nodes.map(\.name)))
                }
                for (key, signed) in [(stranger, "not the secret"), (first, nil)] {
                    let refused = try deployment.request(node, "/v1.41/containers/json", key: key, secret: signed)
                    #expect(refused.status == 403, "\(node.name), signing \(signed ?? "the default message"): \(refused.text)")
                }
            }
        }

        @Test("docker service update --force while a client requests every node: no lost request, the cluster re-forms")
        func rollingUpdate() throws {
            let deployment = try SwarmDeployment()
            defer { deployment.remove() }
            try Self.requireStack(deployment, file: "deckhand-stack.yml")
            let service = "\(Self.stack)_agent"
            let key = SigningKey()
            try deployment.waitForCluster(service: service, key: key)
            let before = try deployment.runningTasks(service)
            let since = Int(Date().timeIntervalSince1970) - 1

            let client = RequestingClient(nodes: deployment.swarm.nodes, key: key)
            client.start()
            let started = Date()
            let update = try deployment.docker(["service", "update", "--force", "--quiet", service], timeout: 300)
            let updateSeconds = Date().timeIntervalSince(started)
            Thread.sleep(forTimeInterval: 2)
            let tally = client.stop()
            print("rolling update of \(service): \(String(format: "%.1f", updateSeconds)) s; \(tally.summary)")

            #expect(update.status == 0, "\(update.output)\(update.errorOutput)")
            let after = try deployment.runningTasks(service)
            #expect(after.count == before.count)
            #expect(Set(after.values).isDisjoint(with: before.values), "not every task was replaced: \(before) -> \(after)")
            // Each old agent stopped by itself, on SIGTERM, well within Docker's 10 s.
            for (nodeName, task) in before.sorted(by: { $0.key < $1.key }) {
                let stopped = try Self.stop(of: task, on: try #require(deployment.swarm.nodes.first { $0.name == nodeName }), deployment, since: since)
                print("rolling update: the agent on \(nodeName) exited with \(stopped.exitCode) \(String(format: "%.2f", stopped.seconds)) s after SIGTERM")
                #expect(stopped.exitCode == 0, "\(nodeName)")
                #expect(stopped.seconds < 8, "\(nodeName)")
            }
            // Connection refusals and resets before the request are the restart itself;
            // anything else is a request the update lost or broke.
            #expect(tally.lost.isEmpty, "\(tally.summary)")
            for node in deployment.swarm.nodes {
                #expect((tally.answered[node.name] ?? 0) > 0, "no answer from \(node.name) at all: \(tally.summary)")
            }
            #expect(tally.drained > 0, "no long request overlapped a stop: \(tally.summary)")

            // The new tasks find each other again.
            try deployment.waitForCluster(service: service, key: key, timeout: 60)
            for node in deployment.swarm.nodes {
                let reply = try deployment.request(node, "/v1.41/containers/json", key: key)
                #expect(reply.status == 200)
                #expect(reply.headers["x-portaineragent-unreachable-nodes"] == nil)
                #expect(Self.nodeNames(in: try reply.json()) == Set(deployment.swarm.nodes.map(\.name)))
            }
        }

        /// How a task's container stopped: its exit status, and the seconds from the
        /// engine's SIGTERM (the `kill` event) to its exit (`die`).
        static func stop(of task: String, on node: LabSwarm.Node, _ deployment: SwarmDeployment, since: Int) throws -> (exitCode: Int, seconds: Double) {
            let container = try deployment.docker(["inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", task])
                .output.trimmingCharacters(in: .whitespacesAndNewlines)
            let swarm = deployment.swarm
            let exit = try swarm.engine(node, ["inspect", "--format", "{{.State.ExitCode}}", container])
            let events = try swarm.engine(node, ["events", "--since", String(since), "--until", String(Int(Date().timeIntervalSince1970) + 1),
                                                 "--filter", "container=\(container)", "--format", "{{.Action}} {{.TimeNano}}"])
            var times: [String: Double] = [:]
            for line in events.output.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 2, times[String(fields[0])] == nil, let nanos = Double(fields[1]) { times[String(fields[0])] = nanos / 1e9 }
            }
            guard let code = Int(exit.output.trimmingCharacters(in: .whitespacesAndNewlines)), let killed = times["kill"], let died = times["die"] else {
                throw TestSetupError("no exit of task \(task) (container \(container)) on \(node.name): \(exit.output)\(exit.errorOutput) \(events.output)")
            }
            return (code, died - killed)
        }

        /// What every variant must do once deployed: the agents found one another at
        /// their overlay addresses; lists aggregate every node's items; a target header
        /// reaches that node; a volume's files on one node are browsed through another,
        /// or, with `volumeBrowser` false (the non-root agent), exactly as far as its user may
        /// read the volume on that node.
        static func checkCluster(_ deployment: SwarmDeployment, network: String, key: SigningKey, volumeBrowser: Bool) throws {
            let swarm = deployment.swarm
            let nodes = swarm.nodes
            let names = Set(nodes.map(\.name))
            let subnet = try deployment.docker(["network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"])
                .output.trimmingCharacters(in: .whitespacesAndNewlines)
            for node in nodes {
                let agents = try #require(try deployment.request(node, "/agents", key: key).json() as? [[String: String]])
                #expect(Set(agents.map { $0["NodeName"] ?? "" }) == names)
                #expect(agents.first { $0["NodeName"] == swarm.manager.name }?["NodeRole"] == "manager")
                for agent in agents {
                    #expect(IPv4Subnet(subnet)?.contains(agent["IPAddress"] ?? "") == true, "\(agent) is not on \(network) (\(subnet))")
                }
            }

            // A container and a volume with a file on every node.
            var containers: [String: String] = [:]
            var volumes: [String: String] = [:]
            defer {
                for node in nodes {
                    _ = try? swarm.engine(node, ["rm", "-f", containers[node.name] ?? "-"])
                    _ = try? swarm.engine(node, ["volume", "rm", "-f", volumes[node.name] ?? "-"])
                }
            }
            for node in nodes {
                let volume = unique("vol-\(node.name)"), container = unique("c-\(node.name)")
                volumes[node.name] = volume
                containers[node.name] = container
                #expect(try swarm.engine(node, ["volume", "create", volume]).status == 0)
                #expect(try swarm.engine(node, ["run", "--rm", "-v", "\(volume):/data", "busybox:local", "sh", "-c", "echo on \(node.name) > /data/where.txt"]).status == 0)
                #expect(try swarm.engine(node, ["create", "--name", container, "busybox:local", "true"]).status == 0)
            }

            for (index, node) in nodes.enumerated() {
                // Aggregation, asked of each node: every node's items, each tagged with its node.
                let listed = try deployment.request(node, "/v1.41/containers/json?all=1", key: key)
                #expect(listed.status == 200)
                #expect(listed.headers["x-portaineragent-unreachable-nodes"] == nil)
                let items = try #require(try listed.json() as? [[String: Any]])
                #expect(nodeNames(in: items) == names)
                for (owner, name) in containers {
                    let item = items.first { ($0["Names"] as? [String])?.contains("/\(name)") == true }
                    #expect(item.map { nodeNames(in: [$0]) } == [owner], "\(name) asked of \(node.name)")
                }
                // Targeting every node from this one.
                for target in nodes {
                    let info = try deployment.request(node, "/v1.41/info", key: key, headers: ["X-PortainerAgent-Target": target.name])
                    #expect((try info.json() as? [String: Any])?["Name"] as? String == target.name, "\(target.name) via \(node.name)")
                    let only = try deployment.request(node, "/v1.41/containers/json?all=1", key: key, headers: ["X-PortainerAgent-Target": target.name])
                    let seen = ((try only.json() as? [[String: Any]]) ?? []).flatMap { $0["Names"] as? [String] ?? [] }
                    #expect(containers.map { seen.contains("/\($0.value)") == ($0.key == target.name) }.allSatisfy { $0 }, "\(target.name) via \(node.name): \(seen)")
                }
                // The volume browser: the next node's volume, through this node.
                let owner = nodes[(index + 1) % nodes.count]
                let target = ["X-PortainerAgent-Target": owner.name]
                let volume = volumes[owner.name]!
                let listing = try deployment.request(node, "/browse/ls?volumeID=\(volume)&path=/", key: key, headers: target)
                guard volumeBrowser else {
                    // The non-root agent reads what its user may read, no more: the truth is
                    // `ls` as that user, on that node, with the stack's own bind mount of
                    // Docker's volumes (Docker leaves the volumes folder 0701, so a volume's
                    // world-readable data can be listed through its own path).
                    let asAgent = try swarm.engine(owner, [
                        "run", "--rm", "--user", "65532:65532", "-v", "/var/lib/docker/volumes:/var/lib/docker/volumes:ro",
                        "busybox:local", "ls", "/var/lib/docker/volumes/\(volume)/_data",
                    ])
                    if asAgent.status == 0 {
                        #expect(listing.status == 200, "\(listing.text)")
                        #expect(asAgent.output.split(separator: "\n") == ["where.txt"], "\(asAgent.output)")
                    } else {
                        #expect(listing.status == 403, "\(listing.text)")
                    }
                    continue
                }
                #expect(listing.status == 200, "\(listing.text)")
                #expect(((try? listing.json() as? [[String: Any]]) ?? []).compactMap { $0["Name"] as? String } == ["where.txt"], "\(listing.text)")
                let file = try deployment.request(node, "/browse/get?volumeID=\(volume)&path=where.txt", key: key, headers: target)
                #expect(file.status == 200)
                #expect(file.text == "on \(owner.name)\n")
            }
        }

        /// The node names an aggregated list's items are tagged with.
        static func nodeNames(in json: Any) -> Set<String> {
            let items = json as? [[String: Any]] ?? []
            return Set(items.compactMap { (($0["Portainer"] as? [String: Any])?["Agent"] as? [String: Any])?["NodeName"] as? String })
        }
    }
}

/// An IPv4 network in CIDR notation, e.g. an overlay network's subnet.
struct IPv4Subnet {
    let network: UInt32
    let mask: UInt32

    init?(_ cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let bits = UInt32(parts[1]), bits <= 32, let address = Self.number(String(parts[0])) else { return nil }
        mask = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        network = address & mask
    }

    func contains(_ address: String) -> Bool {
        Self.number(address).map { $0 & mask == network } ?? false
    }

    static func number(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return octets.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}

/// A client that keeps requesting every node while a rolling update runs: per node,
/// one thread of short aggregated lists and one of long requests (an engine event
/// stream that ends on its own within two seconds), some of which are in flight when
/// the node's task is told to stop. Each request is a new connection, as a client
/// that retries would make.
final class RequestingClient: @unchecked Sendable {
    // `running`, `tally`, `refusals` and `longAnswers` are only touched under `lock`.
    private let nodes: [LabSwarm.Node]
    private let headers: [String: String]
    private let lock = NSLock()
    private var running = false
    private var tally = Tally()
    private var refusals: [String: [Date]] = [:]
    private var longAnswers: [(node: String, from: Date, to: Date)] = []
    private let threads = DispatchGroup()

    struct Tally {
        /// Successful answers by node.
        var answered: [String: Int] = [:]
        /// Aggregated answers that named an unreachable node (a peer restarting).
        var partial = 0
        /// Refused connections and resets before a request was sent: a restarting task.
        var refused = 0
        /// Long requests answered in full although their node refused new connections
        /// (its agent had been told to stop) while they were in flight.
        var drained = 0
        /// Everything else, by kind: curl exit codes and HTTP statuses.
        var lost: [String: Int] = [:]
        var total: Int { answered.values.reduce(0, +) + refused + lost.values.reduce(0, +) }
        var summary: String {
            "\(total) requests: \(answered.values.reduce(0, +)) answered \(answered.sorted { $0.key < $1.key }) (\(partial) partial, \(drained) long ones drained across a stop), \(refused) refused/reset before the request, lost: \(lost.isEmpty ? "none" : "\(lost)")"
        }
    }

    init(nodes: [LabSwarm.Node], key: SigningKey) {
        self.nodes = nodes
        self.headers = key.headers()
    }

    func start() {
        lock.withLock { running = true }
        for node in nodes {
            for long in [false, true] {
                threads.enter()
                Thread.detachNewThread { [self] in
                    while lock.withLock({ running }) { once(node, long: long) }
                    threads.leave()
                }
            }
        }
    }

    func stop() -> Tally {
        lock.withLock { running = false }
        threads.wait()
        return lock.withLock {
            var result = tally
            result.drained = longAnswers.filter { answer in
                refusals[answer.node, default: []].contains { $0 > answer.from && $0 < answer.to }
            }.count
            return result
        }
    }

    private func once(_ node: LabSwarm.Node, long: Bool) {
        let now = Int(Date().timeIntervalSince1970)
        let path = long ? "/v1.41/events?since=\(now)&until=\(now + 2)" : "/v1.41/containers/json"
        // The answer's head goes to a file curl has written when it exits, rather than
        // through a pipe, whose reader a loaded machine may not have run in time.
        let headFile = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-client-\(UUID().uuidString)").path
        defer { unlink(headFile) }
        var arguments = ["-sk", "--http1.1", "-o", "/dev/null", "-D", headFile, "--max-time", "20"]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        arguments.append("https://\(node.address):9001\(path)")
        let started = Date()
        guard let result = try? Command.run("curl", arguments, timeout: 30) else {
            lock.withLock { tally.lost["curl did not run", default: 0] += 1 }
            return
        }
        let head = (try? String(contentsOfFile: headFile, encoding: .utf8)) ?? ""
        let lines = (head.components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }.last ?? "").components(separatedBy: "\r\n")
        let status = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let named = lines.contains { $0.lowercased().hasPrefix("x-portaineragent-unreachable-nodes:") }
        lock.withLock {
            switch (result.status, status) {
            case (0, "200"):
                tally.answered[node.name, default: 0] += 1
                if named { tally.partial += 1 }
                if long { longAnswers.append((node.name, started, Date())) }
            case (7, _), (35, _):
                // 7: connection refused; 35: reset during the TLS handshake, before any request.
                tally.refused += 1
                refusals[node.name, default: []].append(Date())
            case (0, _):
                tally.lost["HTTP '\(status)' from \(node.name)", default: 0] += 1
            default:
                tally.lost["curl exit \(result.status) from \(node.name)", default: 0] += 1
            }
        }
    }
}
