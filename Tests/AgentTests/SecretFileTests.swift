import Foundation
import Glibc
import NIOConcurrencyHelpers
import Testing
@testable import Agent
@testable import Proxy
import TestCommands

/// `AGENT_SECRET_FILE` (issue 17 item 1): secrets from a file, several at once, and
/// rotation by SIGHUP or by a change of the file, on the real binary with real
/// signals. The old secret's signature is openssl's (fixtures/signatures).
@Suite("AGENT_SECRET_FILE and rotation")
struct SecretFileTests {
    static let old = IndependentPair.all.first { $0.madeBy == "openssl" && $0.secret != nil }!

    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dh-secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Replaces the file as Docker and Kubernetes do: a new file renamed over the old.
    static func replace(_ file: URL, with text: String) throws {
        let next = file.appendingPathExtension("next")
        try Data(text.utf8).write(to: next)
        #expect(rename(next.path, file.path) == 0)
    }

    /// Waits up to `seconds` for `status` of a signed `_ping`.
    static func eventually(_ agent: AgentProcess, _ headers: [String: String], is status: Int, within seconds: Double = 6) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try Curl.request("GET", agent.baseURL + "/_ping", headers: headers).status == status { return true }
            usleep(100_000)
        } while Date() < deadline
        return false
    }

    @Test("several secrets at once; SIGHUP and a changed file rotate them, dropping only what the old secret admitted; values never logged")
    func rotation() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let newSecret = "rotated-\(UUID().uuidString)"
        let newKey = SigningKey().headers(secret: newSecret)
        // The old secret with a trailing newline, as `echo` and Docker secrets write it.
        try Data("\(Self.old.secret!)\n".utf8).write(to: file)
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET_FILE": file.path, "LOG_LEVEL": "INFO",
        ])
        defer { agent.stop() }
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: Self.old.headers).status == 200)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: newKey).status == 403)

        // A keep-alive connection, open across both rotations; and one that keeps
        // signing with the old secret's pair (a leaked secret's holder).
        let kept = try LimitsTests.RawConnection(port: agent.port)
        let leaked = try LimitsTests.RawConnection(port: agent.port)
        func ping(_ connection: LimitsTests.RawConnection, _ headers: [String: String]) throws -> String {
            let before = connection.received.count
            let signature = headers.map { "\($0): \($1)\r\n" }.joined()
            try connection.send("GET /_ping HTTP/1.1\r\nHost: x\r\n\(signature)\r\n")
            let deadline = Date().addingTimeInterval(5)
            while connection.received.count == before || !connection.received.hasSuffix("OK") && !connection.received.hasSuffix("}"), Date() < deadline {
                usleep(20_000)
            }
            return String(connection.received.dropFirst(before))
        }
        func keptPing(_ headers: [String: String]) throws -> String { try ping(kept, headers) }
        #expect(try keptPing(Self.old.headers).hasPrefix("HTTP/1.1 200"))
        #expect(try ping(leaked, Self.old.headers).hasPrefix("HTTP/1.1 200"))

        // Rotation, step 1: the new secret beside the old, announced by SIGHUP.
        try Self.replace(file, with: "\(Self.old.secret!)\n\(newSecret)\n")
        #expect(kill(agent.pid, SIGHUP) == 0)
        #expect(try Self.eventually(agent, newKey, is: 200, within: 2))
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: Self.old.headers).status == 200)
        #expect(try keptPing(newKey).hasPrefix("HTTP/1.1 200"), "the kept connection after SIGHUP")

        // Step 2: the old one dropped, the file edited in place, no signal: noticed by
        // itself, and the old pair (verified and remembered before) is refused now.
        let handle = try FileHandle(forWritingTo: file)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("\(newSecret)\r\n".utf8))
        try handle.close()
        #expect(try Self.eventually(agent, Self.old.headers, is: 403))
        // The connection where that pair was accepted before is closed: the pair is not
        // remembered past the rotation, and the connection is not kept either.
        let closed = Date().addingTimeInterval(3)
        while leaked.channel.isActive, Date() < closed { usleep(20_000) }
        #expect(!leaked.channel.isActive, "a connection kept the dropped secret's pair")
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: newKey).status == 200)
        #expect(try keptPing(newKey).hasPrefix("HTTP/1.1 200"), "the kept connection after the change")
        #expect(kept.channel.isActive)

        // A file that cannot be used changes nothing: logged, the secrets in force stay.
        try Self.replace(file, with: "\n\n")
        #expect(kill(agent.pid, SIGHUP) == 0)
        usleep(500_000)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: newKey).status == 200)

        let log = agent.logLines().joined(separator: "\n")
        #expect(log.contains("active_secrets=2") || log.contains("\"active_secrets\":\"2\""), "\(log)")
        #expect(log.contains("SIGHUP") && log.contains("file changed"), "\(log)")
        #expect(log.contains("cannot be used"), "\(log)")
        #expect(!log.contains(Self.old.secret!) && !log.contains(newSecret), "a secret's value in the log")
    }

    /// Long streams opened under a secret outlived its removal: a leaked secret's holder
    /// kept its `docker events` (or logs, or exec session), and a peer that held only
    /// the old secret kept its forwarded stream. Now each connection is held to what
    /// admitted its latest request.
    @Test("a rotation that drops a secret closes the streams it admitted, Portainer's and peers'; the new secret's stay open")
    func rotationClosesStreamsOfTheDroppedSecret() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let oldSecret = Self.old.secret!
        let newSecret = "rotated-\(UUID().uuidString)"
        try Data("\(oldSecret)\n\(newSecret)\n".utf8).write(to: file)
        // A Swarm manager's engine (forwarded requests are served only in a Swarm), whose
        // `/hostile…` answers are streams that stay open until the agent closes them.
        let engine = try HostileEngine(
            reply: Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8),
            answers: ["/info": HostileEngine.swarmManagerInfo])
        defer { engine.stop() }
        let port = try AgentProcess.freePort()
        let node = "rotation-node"
        let agent = try AgentProcess(port: port, environment: [
            "DECKHAND_ENGINE_SOCKET": engine.socket, "AGENT_SECRET_FILE": file.path, "LOG_LEVEL": "INFO",
            "AGENT_CLUSTER_ADDR": "127.0.0.1:\(port)", "DECKHAND_NODE_NAME": node, "DECKHAND_PROBE_INTERVAL": "0.5",
        ])
        defer { agent.stop() }
        let newHeaders = SigningKey().headers(secret: newSecret)

        /// A signed `GET /hostile/events` (a stream, open until the client goes),
        /// forwarded by a peer holding `peerSecret` when one is given.
        func stream(_ headers: [String: String], peerSecret: String? = nil) throws -> LimitsTests.RawConnection {
            var head = headers
            if let peerSecret {
                head[AgentHeaderName.hop] = "1"
                head[AgentHeaderName.proof] = PeerKey(secret: peerSecret).forwardProof(method: "GET", uri: "/hostile/events", hop: "1", node: node)
            }
            let connection = try LimitsTests.RawConnection(port: port)
            try connection.send("GET /hostile/events HTTP/1.1\r\nHost: x\r\n" + head.map { "\($0): \($1)\r\n" }.joined() + "\r\n")
            let deadline = Date().addingTimeInterval(10)
            while !connection.received.contains("\r\n\r\n"), Date() < deadline { usleep(20_000) }
            return connection
        }
        // Forwarded requests are checked once the agent knows its node: a forged proof is refused then.
        let ready = Date().addingTimeInterval(15)
        var forged = ""
        repeat {
            var head = newHeaders
            head[AgentHeaderName.hop] = "1"
            head[AgentHeaderName.proof] = "\(PeerKey.now).\(String(repeating: "0", count: 32)).\(String(repeating: "0", count: 64))"
            forged = try Curl.request("GET", agent.baseURL + "/_ping", headers: head).text
            if forged.contains("peer proof") { break }
            usleep(200_000)
        } while Date() < ready
        #expect(forged.contains("peer proof"), "\(forged)")

        let leakedPortainer = try stream(Self.old.headers)
        let leakedPeer = try stream(newHeaders, peerSecret: oldSecret)
        let portainer = try stream(newHeaders)
        let peer = try stream(newHeaders, peerSecret: newSecret)
        for (name, connection) in [("old signature", leakedPortainer), ("old peer", leakedPeer), ("new signature", portainer), ("new peer", peer)] {
            #expect(connection.received.hasPrefix("HTTP/1.1 200"), "\(name): \(connection.received)")
        }

        try Self.replace(file, with: "\(newSecret)\n")
        let deadline = Date().addingTimeInterval(6)
        while leakedPortainer.channel.isActive || leakedPeer.channel.isActive, Date() < deadline { usleep(50_000) }
        #expect(!leakedPortainer.channel.isActive, "the dropped secret's signature kept its stream")
        #expect(!leakedPeer.channel.isActive, "a peer proven only by the dropped secret kept its stream")
        usleep(300_000)
        #expect(portainer.channel.isActive && peer.channel.isActive, "a stream admitted by the kept secret was closed")
        let log = agent.logLines().joined(separator: "\n")
        #expect(log.contains("connections_closed=2") || log.contains("\"connections_closed\":\"2\""), "\(log)")
    }

    /// A request checked against the secrets just before a rotation, and recorded on its
    /// connection just after the rotation looked for what to close, was never closed:
    /// its stream outlived the secret. Fresh keys on every request, and the old secret
    /// last of eight, make each check cost eight ECDSA verifications, so that
    /// rotations land inside checks often.
    @Test("a stream whose signature was checked while a rotation dropped its secret does not outlive it")
    func rotationDuringACheck() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let oldSecret = Self.old.secret!
        let newSecret = (0..<7).map { "rotated-\($0)-\(UUID().uuidString)" }.joined(separator: "\n")
        try Data("\(newSecret)\n\(oldSecret)\n".utf8).write(to: file)
        let engine = try HostileEngine(reply: Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
        defer { engine.stop() }
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": engine.socket, "AGENT_SECRET_FILE": file.path])
        defer { agent.stop() }
        // Signed with the old secret, each with a key of its own (no cache can answer).
        let requests = (0..<400).map { _ in
            "GET /hostile/events HTTP/1.1\r\nHost: x\r\n" + SigningKey().headers(secret: oldSecret).map { "\($0): \($1)\r\n" }.joined() + "\r\n"
        }
        var survivors = 0
        var admitted = 0
        for round in 0..<8 {
            try Self.replace(file, with: "\(newSecret)\n\(oldSecret)\n")
            #expect(kill(agent.pid, SIGHUP) == 0)
            usleep(300_000)
            // Connections sending one request each, back to back, while the old secret
            // is dropped in their midst.
            let pid = agent.pid
            let path = file.path
            let rotated = DispatchSemaphore(value: 0)
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.15) {
                try? Data("\(newSecret)\n".utf8).write(to: URL(fileURLWithPath: path + ".next"))
                rename(path + ".next", path)
                kill(pid, SIGHUP)
                rotated.signal()
            }
            var opened: [LimitsTests.RawConnection] = []
            let until = Date().addingTimeInterval(0.4)
            var index = round * 67
            while Date() < until {
                let connection = try LimitsTests.RawConnection(port: agent.port)
                connection.sendWithoutWaiting(requests[index % requests.count])
                opened.append(connection)
                index += 1
            }
            rotated.wait()
            usleep(1_500_000)
            for connection in opened where connection.received.hasPrefix("HTTP/1.1 200") {
                admitted += 1
                if connection.channel.isActive { survivors += 1 }
            }
        }
        #expect(admitted > 0, "no stream was admitted before a rotation: the test proves nothing")
        #expect(survivors == 0, "\(survivors) of \(admitted) streams admitted under the dropped secret outlived it")
    }

    /// While a Swarm rotates, an agent that holds only the old secret (a leaked one's
    /// holder among them, posing as a member) was sent every fan-out and targeted
    /// request, Portainer's new-secret signature included: a pair Portainer sends
    /// unchanged on every request, so it outlived the rotation. Now a request goes only
    /// to members that proved the secret its signature signs.
    @Test("a member that holds only the old secret is never sent the new secret's signature: named unreachable instead")
    func oldOnlyMemberNeverGetsTheNewSignature() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let oldSecret = "old-\(UUID().uuidString)"
        let newSecret = "new-\(UUID().uuidString)"
        try Data("\(newSecret)\n\(oldSecret)\n".utf8).write(to: file)
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo, "/containers/json": #"[{"Id":"c"}]"#])
        defer { engine.stop() }
        let (portA, portB) = (try AgentProcess.freePort(), try AgentProcess.freePort())
        let cluster = "127.0.0.1:\(portA),127.0.0.1:\(portB)"
        let common = ["DECKHAND_ENGINE_SOCKET": engine.socket, "AGENT_CLUSTER_ADDR": cluster, "DECKHAND_PROBE_INTERVAL": "0.3"]
        let rotating = try AgentProcess(port: portA, environment: common.merging(["AGENT_SECRET_FILE": file.path, "DECKHAND_NODE_NAME": "node-a"]) { $1 })
        defer { rotating.stop() }
        let oldOnly = try AgentProcess(port: portB, environment: common.merging([
            "AGENT_SECRET": oldSecret, "DECKHAND_NODE_NAME": "node-b", "LOG_LEVEL": "INFO",
        ]) { $1 })
        defer { oldOnly.stop() }
        let newHeaders = SigningKey().headers(secret: newSecret)
        let oldHeaders = SigningKey().headers(secret: oldSecret)
        // node-b is a member, and a request signed with the old secret reaches it.
        let deadline = Date().addingTimeInterval(15)
        var listed = try Curl.request("GET", rotating.baseURL + "/containers/json", headers: oldHeaders)
        while !listed.text.contains("node-b"), Date() < deadline {
            usleep(200_000)
            listed = try Curl.request("GET", rotating.baseURL + "/containers/json", headers: oldHeaders)
        }
        #expect(listed.text.contains(#""NodeName":"node-b""#), "\(listed.text)")

        let fanOut = try Curl.request("GET", rotating.baseURL + "/containers/json", headers: newHeaders)
        #expect(fanOut.status == 200)
        #expect(fanOut.headers["x-portaineragent-unreachable-nodes"] == "node-b", "\(fanOut.headers)")
        #expect(fanOut.text.contains(#""NodeName":"node-a""#) && !fanOut.text.contains("node-b"), "\(fanOut.text)")
        var targeted = newHeaders
        targeted[AgentHeaderName.target] = "node-b"
        let refused = try Curl.request("GET", rotating.baseURL + "/containers/json", headers: targeted)
        #expect(refused.status == 403 && refused.text.contains("did not prove the secret"), "\(refused.status) \(refused.text)")
        usleep(500_000)
        // Had it been sent, node-b would have refused the pair it cannot check, and said so.
        let log = oldOnly.logLines().joined(separator: "\n")
        #expect(!log.contains("authentication failed"), "\(log)")
    }

    @Test("a file that cannot be used stops start-up with one line naming AGENT_SECRET_FILE",
          arguments: ["missing", "empty", "blank lines", "a folder", "with AGENT_SECRET", "nine secrets", "writable by others", "another user's"])
    func unusableAtStart(_ case: String) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("secret")
        var environment = ["AGENT_SECRET_FILE": file.path]
        switch `case` {
        case "missing": break
        case "empty": try Data().write(to: file)
        case "blank lines": try Data("\n\r\n\n".utf8).write(to: file)
        case "a folder": try FileManager.default.createDirectory(at: file, withIntermediateDirectories: true)
        case "with AGENT_SECRET":
            try Data("file-secret\n".utf8).write(to: file)
            environment["AGENT_SECRET"] = "env-secret"
        case "writable by others", "another user's":
            try Data("file-secret\n".utf8).write(to: file)
            if `case` == "writable by others" {
                #expect(chmod(file.path, 0o666) == 0)
            } else {
                #expect(chown(file.path, 65534, 65534) == 0)
            }
        default: try Data((1...9).map { "secret-\($0)\n" }.joined().utf8).write(to: file)
        }
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: environment, timeout: 20)
        #expect(result.status == 2)
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1, "\(result.errorOutput)")
        #expect(lines.first?.contains("AGENT_SECRET_FILE") == true, "\(result.errorOutput)")
        #expect(!result.errorOutput.contains("file-secret") && !result.errorOutput.contains("env-secret"))
    }

    /// Before, whoever could write the file (a group, every user) added a secret of
    /// their own, which the running agent took within 2 s.
    @Test("a secret file that others may write is refused on reload: the secrets in force stay")
    func reloadRefusesFileOthersMayWrite() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let secret = "kept-\(UUID().uuidString)"
        try Data("\(secret)\n".utf8).write(to: file)
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET_FILE": file.path, "LOG_LEVEL": "INFO",
        ])
        defer { agent.stop() }
        let key = SigningKey()
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers(secret: secret)).status == 200)
        // Another user's write, as a group-writable (gid 65534) file allows: the file is changed in place.
        #expect(chown(file.path, 0, 65534) == 0 && chmod(file.path, 0o664) == 0)
        let intruder = "intruder-\(UUID().uuidString)"
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\(intruder)\n".utf8))
        try handle.close()
        #expect(kill(agent.pid, SIGHUP) == 0)
        usleep(2_500_000)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers(secret: intruder)).status == 403)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers(secret: secret)).status == 200)
        let log = agent.logLines().joined(separator: "\n")
        #expect(log.contains("cannot be used") && log.contains("mode 664"), "\(log)")
    }

    @Test("a line of spaces or tabs in the file is no secret: a request signed with it is refused")
    func blankLinesAreNoSecrets() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("agent_secret")
        let secret = "real-\(UUID().uuidString)"
        try Data("\(secret)\n \n\t\n".utf8).write(to: file)
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET_FILE": file.path])
        defer { agent.stop() }
        let key = SigningKey()
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers(secret: secret)).status == 200)
        // Before, each blank line was a secret too: anyone signing with " " got in.
        for blank in [" ", "\t"] {
            #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers(secret: blank)).status == 403, "signed with \(Array(blank.utf8))")
        }
    }

    @Test("an empty or blank --secret or AGENT_SECRET stops start-up with one line",
          arguments: [(["--secret", ""], [String: String]()), (["--secret", " \t"], [:]), ([], ["AGENT_SECRET": "   "])])
    func blankSecretRefused(arguments: [String], environment: [String: String]) throws {
        // Before, `--secret ""` started in shared-secret mode on the empty secret.
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"] + arguments, environment: environment, timeout: 20)
        #expect(result.status == 2, "\(result.errorOutput)")
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.contains("AGENT_SECRET") == true, "\(result.errorOutput)")
    }

    /// Before, each started the agent with the door open: trust on first use, or any client.
    @Test("AGENT_SECRET_FILE or DECKHAND_ALLOWED_CLIENTS set to nothing stops start-up with one line naming it",
          arguments: ["AGENT_SECRET_FILE", "DECKHAND_ALLOWED_CLIENTS"])
    func emptySecurityVariablesRefused(variable: String) throws {
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: [variable: ""], timeout: 20)
        #expect(result.status == 2, "\(result.errorOutput)")
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.contains(variable) == true, "\(result.errorOutput)")
    }

    @Test("a short secret starts, with a warning that names its length and not its value")
    func shortSecretWarned() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET": "short-one", "LOG_LEVEL": "INFO"])
        defer { agent.stop() }
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: SigningKey().headers(secret: "short-one")).status == 200)
        let log = agent.logLines().joined(separator: "\n")
        #expect(log.contains("9 bytes can be guessed"), "\(log)")
        #expect(!log.contains("short-one"))
    }

    @Test("peers during a rotation: old+new and old trust each other both ways, new and old do not")
    func peersDuringRotation() {
        let now: Int64 = 1_800_000_000
        let both = PeerKey(secrets: ["new secret", "old secret"])
        let old = PeerKey(secret: "old secret")
        let new = PeerKey(secret: "new secret")
        func trusts(_ prober: PeerKey, _ responder: PeerKey) -> Bool {
            let challenge = prober.challenge(address: "10.99.0.12:9001", now: now)
            guard let nonce = responder.admitChallenge(challenge.header, address: "10.99.0.12:9001", now: now) else { return false }
            let body = Array(#"{"NodeName":"node2","NodeRole":"worker"}"#.utf8)
            guard prober.isProven(answer: body, proof: responder.answerProof(nonce: nonce, body: body), nonce: challenge.nonce) else { return false }
            let proof = prober.forwardProof(method: "GET", uri: "/info", hop: "1", node: "node2", now: now)
            return responder.admitForwarded(proof: proof, method: "GET", uri: "/info", hop: "1", node: "node2", now: now)
        }
        #expect(trusts(both, old) && trusts(old, both))
        #expect(trusts(both, new) && trusts(new, both))
        #expect(!trusts(new, old) && !trusts(old, new))
        // After the rotation ends, the old-only peer is out.
        both.replaceSecrets(["new secret"])
        #expect(!trusts(both, old) && !trusts(old, both))
        #expect(trusts(both, new))
    }
}
