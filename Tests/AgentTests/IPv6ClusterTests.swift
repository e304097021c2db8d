import Foundation
import Testing

extension LabSuites {
    /// Cluster mode over IPv6 only (issue 18.4), on the lab brought up with
    /// `scripts/swarm-lab up --ipv6`: each node's agent listens on the node's ULA
    /// address alone, so every probe, fan-out, forwarded request and console between
    /// them travels over IPv6.
    ///
    /// The agents run as processes in the nodes' namespaces rather than as a Swarm
    /// service: on this docker.io (20.10) a Swarm overlay made with `--ipv6` gives
    /// tasks IPv6 addresses from each node's own pool (two nodes' tasks got the same
    /// one, a third was rejected) and `tasks.<service>` answers A records only. The
    /// lab's `agents6.lab` name stands in for it: three AAAA records, as the embedded
    /// DNS of a newer engine answers.
    @Suite("Cluster mode over IPv6 on the lab", .serialized)
    struct IPv6ClusterTests {
        /// Found by address list and by name; with a secret too, whose probe challenge
        /// names the address dialled (`[fd64:6468::12]:9001`).
        @Test("IPv6 members: /agents, aggregation, targeting and a console across nodes", arguments: [
            (LabCluster.IPv6Seeds.addresses, nil), (.name, nil), (.addresses, "v6-lab-secret"),
        ] as [(LabCluster.IPv6Seeds, String?)])
        func ipv6Cluster(seeds: LabCluster.IPv6Seeds, secret: String?) throws {
            let lab = try LabCluster(secret: secret, ipv6: seeds)
            defer { lab.stop() }
            let key = lab.key
            let addresses = Set(lab.nodes.compactMap(\.address6))
            #expect(addresses.count == 3)

            // IPv6 only: nothing answers on the nodes' IPv4 addresses.
            for node in lab.nodes {
                #expect((try? Curl.request("GET", "https://\(node.address):9001/ping", extra: ["--max-time", "2"])) == nil, "\(node.name)")
            }

            // /agents on every node: the three members at their IPv6 addresses, as
            // Portainer reads them (IPAddress without brackets, Port apart).
            for node in lab.nodes {
                let reply = try lab.request(node, "GET", "/agents", key: key)
                #expect(reply.status == 200, "\(reply.text)")
                let agents = try #require(try reply.json() as? [[String: String]])
                #expect(Set(agents.compactMap { $0["IPAddress"] }) == addresses, "\(agents)")
                #expect(Set(agents.compactMap { $0["NodeName"] }) == ["node1", "node2", "node3"])
                #expect(agents.allSatisfy { $0["Port"] == "9001" })
            }

            // Something on every node, to find in the lists.
            var containers: [String: String] = [:]
            for node in lab.nodes {
                let name = ClusterTests.unique("v6-\(node.name)")
                #expect(try lab.engine(node, ["run", "-d", "--name", name, "busybox:local", "sleep", "3600"]).status == 0)
                containers[node.name] = name
            }
            defer {
                for node in lab.nodes { _ = try? lab.engine(node, ["rm", "-f", containers[node.name]!]) }
            }

            // Aggregation asked of a worker: every node's containers, each tagged.
            let listed = try lab.request(lab.nodes[1], "GET", "/v1.41/containers/json", key: key)
            #expect(listed.status == 200, "\(listed.text)")
            #expect(listed.headers["x-portaineragent-unreachable-nodes"] == nil)
            let items = try #require(try listed.json() as? [[String: Any]])
            for (node, name) in containers {
                let item = items.first { ($0["Names"] as? [String])?.contains("/\(name)") == true }
                #expect((((item?["Portainer"] as? [String: Any])?["Agent"] as? [String: Any])?["NodeName"] as? String) == node, "\(name)")
            }

            // Targeting each node through node 1's agent.
            for (target, name) in containers {
                let reply = try lab.request(lab.nodes[0], "GET", "/v1.41/containers/json", key: key, headers: ["X-PortainerAgent-Target": target])
                #expect(reply.status == 200, "target \(target): \(reply.text)")
                let names = try #require(try reply.json() as? [[String: Any]]).flatMap { $0["Names"] as? [String] ?? [] }
                #expect(names.contains("/\(name)"), "target \(target)")
                #expect(!containers.values.filter { $0 != name }.contains { names.contains("/\($0)") }, "target \(target)")
            }

            // A console on node 3's container, opened at node 1's agent.
            let console = try lab.console(at: lab.nodes[0], container: containers["node3"]!, on: "node3", byParameter: true, line: "echo $((6*7))v6; exit\n")
            #expect(console.status == 101)
            // Only a shell that ran the line prints 42 (the typed text says 6*7).
            #expect(console.text.contains("42v6"), "\(console.text)")
            #expect(console.closed)
        }
    }
}
