import Foundation
import Proxy
import Testing
import TestCommands

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

        @Test("secret mode: a TLS server without the secret is refused at the handshake and sent nothing, not even a probe; strangers learn nothing")
        func secretModeWithoutProof() throws {
            let secret = "peer-trust-\(UUID().uuidString)"
            try Self.withImpostor(secret: secret) { lab, impostor in
                impostor.claim(#"{"NodeName":"node4","NodeRole":"manager","Version":"2.19.4"}"#)
                Self.probeRounds(lab)

                try Self.expectOnlyRealMembers(lab, impostor, "no proof")
                // Its certificate is not vouched for under the secret (`PeerCertificate`):
                // no agent finished a handshake with it, so it saw no request at all, and no
                // challenge to relay.
                #expect(impostor.received.isEmpty, "\(impostor.received.map { "\($0.method) \($0.uri)" })")
                let status = try lab.request(lab.nodes[1], "GET", "/v2/cluster/status", key: lab.key)
                #expect(status.text.contains(impostor.seed) && status.text.contains("not vouched for under the shared secret"), "\(status.text)")
                #expect(lab.log(lab.nodes[1]).contains("not vouched for"), "\(lab.log(lab.nodes[1]))")

                // A stranger's probe (no challenge) learns neither name, role nor version.
                let stranger = try Curl.request("GET", "https://\(lab.nodes[0].address):9001/v2/cluster/member")
                #expect(stranger.status == 403)
                #expect(!stranger.text.contains("node1") && !stranger.text.contains("manager"), "\(stranger.text)")
                // Nor does a valid challenge made out to another address (one an impostor
                // would relay): made here with the secret, for the impostor's address.
                let relayed = PeerKey(secret: secret).challenge(address: impostor.seed).header
                let replayed = try Curl.request("GET", "https://\(lab.nodes[0].address):9001/v2/cluster/member",
                                                headers: ["X-PortainerAgent-Deckhand-Challenge": relayed])
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

        /// Python's TLS relay: its own certificate to whoever connects, a connection to
        /// the real agent (marked, so that the interception rule lets it through) for
        /// each, and every byte it reads from the connecting side written to `log`; a
        /// dot in `dialled` for each connection.
        static let interceptor = """
            import socket, ssl, sys, threading
            cert, key, host, port, upstream, log, dialled = sys.argv[1:8]
            served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            served.load_cert_chain(cert, key)
            onward = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            onward.check_hostname = False
            onward.verify_mode = ssl.CERT_NONE
            out = open(log, "ab", buffering=0)
            calls = open(dialled, "ab", buffering=0)
            def pump(source, sink, record):
                try:
                    while True:
                        data = source.recv(65536)
                        if not data:
                            break
                        if record:
                            out.write(data)
                        sink.sendall(data)
                except OSError:
                    pass
                for end in (source, sink):
                    try:
                        end.close()
                    except OSError:
                        pass
            def handle(connection):
                try:
                    client = served.wrap_socket(connection, server_side=True)
                    raw = socket.socket()
                    raw.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MARK", 36), 0x99)
                    raw.connect((upstream, 9001))
                    agent = onward.wrap_socket(raw)
                except (ssl.SSLError, OSError):
                    connection.close()
                    return
                threading.Thread(target=pump, args=(client, agent, True), daemon=True).start()
                pump(agent, client, False)
            listener = socket.create_server((host, int(port)))
            while True:
                connection, _ = listener.accept()
                calls.write(b".")
                threading.Thread(target=handle, args=(connection,), daemon=True).start()
            """

        @Test("secret mode: an interceptor between two agents (its own certificate, relaying to the real agent) is refused at the handshake and reads nothing")
        func secretModeInterceptor() throws {
            let lab = try LabCluster(secret: "peer-trust-\(UUID().uuidString)")
            defer { lab.stop() }
            let (node1, node3) = (lab.nodes[0], lab.nodes[2])
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("interceptor-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let (key, certificate) = (folder.appendingPathComponent("key.pem").path, folder.appendingPathComponent("cert.pem").path)
            let (log, dialled) = (folder.appendingPathComponent("read").path, folder.appendingPathComponent("dialled").path)
            let made = try Command.run("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", certificate,
                "-subj", "/CN=deckhand peer", "-days", "1", "-addext", "subjectAltName=DNS:deckhand-peer.invalid",
            ])
            #expect(made.status == 0, "\(made.errorOutput)")
            #expect(FileManager.default.createFile(atPath: log, contents: nil))
            let relay = try Command.spawn(LabSwarm.swarmLab, ["exec", "1", "python3", "-c", Self.interceptor, certificate, key, node1.address, "19001", node3.address, log, dialled],
                                          environment: ["SWARM_LAB_DIR": lab.swarm.labDirectory])
            defer { relay.stop() }
            // Node 1's connections to node 3's agent go to the relay instead.
            let rule = ["-p", "tcp", "-d", node3.address, "--dport", "9001", "-m", "mark", "!", "--mark", "0x99", "-j", "DNAT", "--to-destination", "\(node1.address):19001"]
            #expect(try lab.lab(["exec", "1", "iptables", "-t", "nat", "-A", "OUTPUT"] + rule).status == 0)
            defer { _ = try? lab.lab(["exec", "1", "iptables", "-t", "nat", "-D", "OUTPUT"] + rule) }
            // Node 1's agent starts again, so none of its connections predates the rule.
            try lab.restartAgent(port: 9001)
            Self.probeRounds(lab, 4)

            #expect(try Set(Self.listedNames(lab, node1)) == ["node1", "node2"], "node 1 adopted node 3 through the interceptor")
            #expect(try Set(Self.listedNames(lab, lab.nodes[1])) == ["node1", "node2", "node3"])
            let targeted = try lab.request(node1, "GET", "/v1.41/info", key: lab.key, headers: ["X-PortainerAgent-Target": node3.name])
            #expect(targeted.status != 200, "\(targeted.text)")
            // The relay was dialled (the rule works) but read nothing: no probe, no request.
            #expect(((try? Data(contentsOf: URL(fileURLWithPath: dialled))) ?? Data()).count >= 1, "the interceptor was never dialled")
            let read = (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data()
            #expect(read.isEmpty, "the interceptor read: \(String(decoding: read.prefix(300), as: UTF8.self))")
            let status = try lab.request(node1, "GET", "/v2/cluster/status", key: lab.key)
            #expect(status.text.contains("not vouched for under the shared secret"), "\(status.text)")
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
