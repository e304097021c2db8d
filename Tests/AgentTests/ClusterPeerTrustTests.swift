import Foundation
import Testing

extension LabSuites {
    /// Something at a cluster address that answers the membership probe is not a
    /// member for that alone: three real agents on the lab Swarm, and an impostor
    /// TLS server on the lab bridge that the cluster address also names.
    @Suite("Cluster peers on a real 3-node Swarm are not taken on trust", .serialized)
    struct ClusterPeerTrustTests {
        /// Long enough for every agent to probe the impostor a few times.
        static func probeRounds(_ lab: LabCluster, _ count: Double = 3) {
            Thread.sleep(forTimeInterval: lab.probeInterval * count + lab.memberTimeout)
        }

        /// Runs `body` with the lab's agents, whose cluster address also names an
        /// impostor on the lab bridge that claims nothing until told to.
        static func withImpostor(secret: String? = nil, _ body: (LabCluster, ImpostorAgent) throws -> Void) throws {
            let impostor = try ImpostorAgent(host: LabSwarm().bridgeAddress)
            defer { impostor.stop() }
            let lab = try LabCluster(secret: secret, extraSeeds: [impostor.seed])
            defer { lab.stop() }
            try body(lab, impostor)
        }

        static func listedNames(_ lab: LabCluster, _ node: LabCluster.Node) throws -> [String] {
            try lab.agentNames(asking: node)
        }

        /// Every node's aggregated list and /agents: the three real nodes, nothing else,
        /// nobody unreachable, and the impostor sent nothing but probes.
        static func expectOnlyRealMembers(_ lab: LabCluster, _ impostor: ImpostorAgent, _ comment: Comment) throws {
            for node in lab.nodes {
                #expect(try Set(listedNames(lab, node)) == ["node1", "node2", "node3"], comment)
                let reply = try lab.request(node, "GET", "/v1.41/containers/json?all=1", key: lab.key)
                #expect(reply.status == 200, comment)
                #expect(reply.headers["x-portaineragent-unreachable-nodes"] == nil, comment)
                #expect(reply.headers["set-cookie"] == nil, comment)
            }
            #expect(impostor.forwarded.isEmpty, "\(comment): the impostor was sent \(impostor.forwarded.map { "\($0.method) \($0.uri)" })")
        }

        @Test("a member name with CR/LF is refused: never in a response header, escaped in the log")
        func headerInjectionName() throws {
            try Self.withImpostor { lab, impostor in
                impostor.claim(#"{"NodeName":"nodeB\r\nSet-Cookie: stolen=1","NodeRole":"worker","Version":"1.0"}"#)
                Self.probeRounds(lab)

                try Self.expectOnlyRealMembers(lab, impostor, "CR/LF name")
                #expect(impostor.received.count >= 3, "the agents did probe it")
                let log = lab.log(lab.nodes[0])
                #expect(log.contains("cluster member refused"), "\(log)")
                #expect(log.contains(#"nodeB\u{d}\u{a}Set-Cookie"#), "\(log)")
                #expect(!log.contains("\r\nSet-Cookie") && !log.contains("\nSet-Cookie"), "a raw CR/LF reached the log")
            }
        }

        @Test("secret mode: a valid name without the proof is not adopted and is sent nothing; strangers learn nothing")
        func secretModeWithoutProof() throws {
            let secret = "peer-trust-\(UUID().uuidString)"
            try Self.withImpostor(secret: secret) { lab, impostor in
                impostor.claim(#"{"NodeName":"node4","NodeRole":"manager","Version":"2.19.4"}"#)
                Self.probeRounds(lab)

                try Self.expectOnlyRealMembers(lab, impostor, "no proof")
                #expect(lab.log(lab.nodes[1]).contains("no valid proof"), "\(lab.log(lab.nodes[1]))")
                // Each probe carried a challenge, and nothing the impostor saw holds the secret
                // or Portainer's signature.
                let probes = impostor.received
                #expect(!probes.isEmpty)
                for request in probes {
                    #expect(request.headers.contains { $0.0.lowercased() == "x-portaineragent-deckhand-challenge" })
                    #expect(!request.headers.contains { $0.1.contains(secret) })
                    #expect(!request.headers.contains { $0.0.lowercased().hasPrefix("x-portaineragent-signature") })
                }

                // A stranger's probe (no challenge) learns neither name, role nor version.
                let stranger = try Curl.request("GET", "https://\(lab.nodes[0].address):9001/v2/cluster/member")
                #expect(stranger.status == 403)
                #expect(!stranger.text.contains("node1") && !stranger.text.contains("manager"), "\(stranger.text)")
                // Nor does a challenge made out to another address: the impostor cannot
                // relay the one it was sent to a real agent.
                let copied = try #require(probes.last?.headers.first { $0.0.lowercased() == "x-portaineragent-deckhand-challenge" }?.1)
                let replayed = try Curl.request("GET", "https://\(lab.nodes[0].address):9001/v2/cluster/member",
                                                headers: ["X-PortainerAgent-Deckhand-Challenge": copied])
                #expect(replayed.status == 403, "\(replayed.text)")

                // A request marked as forwarded by an agent, with Portainer's valid signature
                // but no peer proof, is refused.
                let forged = try lab.request(lab.nodes[0], "GET", "/v1.41/containers/json", key: lab.key,
                                             headers: ["X-PortainerAgent-Deckhand-Hop": "list", "X-PortainerAgent-Target": "node1"])
                #expect(forged.status == 403, "\(forged.text)")
                // Targeted requests between the real agents still go through.
                let targeted = try lab.request(lab.nodes[0], "GET", "/v1.41/info", key: lab.key, headers: ["X-PortainerAgent-Target": "node3"])
                #expect((try targeted.json() as? [String: Any])?["Name"] as? String == "node3")
            }
        }

        @Test("a second address claiming a node's name while that node answers is not adopted")
        func nameTakeover() throws {
            try Self.withImpostor { lab, impostor in
                // Answering a little later than the real node makes the impostor the newer
                // of the two addresses in every round.
                impostor.claim(#"{"NodeName":"node2","NodeRole":"worker","Version":"1.0"}"#, delay: .milliseconds(300))
                Self.probeRounds(lab, 4)

                try Self.expectOnlyRealMembers(lab, impostor, "takeover")
                let agents = try #require(try lab.request(lab.nodes[0], "GET", "/agents", key: lab.key).json() as? [[String: String]])
                #expect(agents.first { $0["NodeName"] == "node2" }?["IPAddress"] == lab.nodes[1].address)
                #expect(lab.log(lab.nodes[0]).contains("held by \(lab.nodes[1].address):9001"), "\(lab.log(lab.nodes[0]))")
                // Targeting node2 reaches the real node2.
                let targeted = try lab.request(lab.nodes[0], "GET", "/v1.41/info", key: lab.key, headers: ["X-PortainerAgent-Target": "node2"])
                #expect((try targeted.json() as? [String: Any])?["Name"] as? String == "node2")
                #expect(impostor.forwarded.isEmpty)
            }
        }
    }
}
