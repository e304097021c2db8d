import Foundation
import Proxy
import Testing
import TestCommands

@Suite("What a peer agent says about itself")
struct PeerValueTests {
    @Test("node names are host names, nothing else", arguments: [
        ("node1", true), ("worker-2.example.com", true), ("a_b", true), ("n", true),
        (String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 63), true),
        (String(repeating: "a", count: 64), false),
        ([String](repeating: String(repeating: "a", count: 50), count: 6).joined(separator: "."), false),
        ("", false), ("nodeB\r\nSet-Cookie: x=1", false), ("node\n", false), ("node 1", false), ("node,2", false),
        ("-node", false), ("node..x", false), (".node", false), ("node.", false), ("nœud", false), ("node\u{0}", false),
        ("a.-b", false), ("node:9001", false),
    ])
    func nodeNames(name: String, valid: Bool) {
        #expect(PeerText.isNodeName(name) == valid, "\(name.debugDescription)")
    }

    @Test("a probe answer with a bad name, role or version makes no member", arguments: [
        #"{"NodeName":"nodeB\r\nSet-Cookie: x=1","NodeRole":"worker","Version":"1.0"}"#,
        #"{"NodeName":"node2","NodeRole":"worker\r\nX: y","Version":"1.0"}"#,
        #"{"NodeName":"node2","NodeRole":"admin","Version":"1.0"}"#,
        #"{"NodeName":"node2","NodeRole":"worker","Version":"1.0\nX: y"}"#,
        #"{"NodeName":"","NodeRole":"worker","Version":"1.0"}"#,
    ])
    func refusedAnswers(body: String) throws {
        let info = try MemberInfo(probeAnswer: Array(body.utf8))
        #expect(throws: (any Error).self) { try ClusterMember(answer: info, host: "10.0.0.2", port: 9001) }
    }

    @Test("a valid answer makes a member; the version is optional")
    func acceptedAnswer() throws {
        let info = try MemberInfo(probeAnswer: Array(#"{"NodeName":"node2","NodeRole":"manager"}"#.utf8))
        let member = try ClusterMember(answer: info, host: "10.0.0.2", port: 9001)
        #expect(member.nodeName == "node2" && member.isManager && member.version == "")
    }

    @Test("a refused value is quoted for the log: no raw CR, LF or control byte, cut short")
    func quotedForLogs() {
        #expect(PeerText.quoted("nodeB\r\nSet-Cookie: x") == #""nodeB\u{d}\u{a}Set-Cookie: x""#)
        #expect(PeerText.quoted("a\"b\\c\u{1b}é") == #""a\"b\\c\u{1b}\u{e9}""#)
        let long = PeerText.quoted(String(repeating: "x", count: 500))
        #expect(long.count == 64 + 3 && long.hasSuffix("…\""))
        #expect(PeerRefusal.invalid("node name", "a\r\nb").description == #"invalid node name "a\u{d}\u{a}b""#)
    }
}

@Suite("Proof of the shared secret between agents")
struct PeerKeyTests {
    static let secret = "peer-key-tests-secret"

    /// The key as OpenSSL derives it: HKDF-SHA256, no salt, the fixed label.
    static func opensslKey(_ secret: String) throws -> String {
        let result = try Command.run("openssl", ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA256", "-kdfopt", "key:\(secret)",
                                                  "-kdfopt", "info:deckhand peer key v1", "HKDF"])
        #expect(result.status == 0, "\(result.errorOutput)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: "").lowercased()
    }

    /// The key a certificate's MACs are made under for `secret`, as OpenSSL's scrypt
    /// derives it (N = 2^15, r = 8, p = 1, salt "deckhand certificate key v2"), hex.
    static func opensslCertificateKey(_ secret: String) throws -> String {
        let result = try Command.run("openssl", ["kdf", "-keylen", "32", "-kdfopt", "pass:\(secret)", "-kdfopt", "salt:deckhand certificate key v2",
                                                  "-kdfopt", "n:32768", "-kdfopt", "r:8", "-kdfopt", "p:1", "SCRYPT"])
        #expect(result.status == 0, "\(result.errorOutput)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: "").lowercased()
    }

    /// HMAC-SHA256 of `message` as OpenSSL computes it, hex.
    static func opensslHMAC(key: String, _ message: Data) throws -> String {
        let result = try Command.run("openssl", ["dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:\(key)", "-r"], input: message)
        #expect(result.status == 0, "\(result.errorOutput)")
        return String(result.output.split(separator: " ").first ?? "")
    }

    static func parts(_ token: String) -> (time: String, nonce: String, mac: String) {
        let parts = token.split(separator: ".").map(String.init)
        return (parts[0], parts[1], parts[2])
    }

    @Test("the probe challenge, its answer and a forwarding proof are the MACs OpenSSL computes under the HKDF key")
    func macsMatchOpenSSL() throws {
        let key = try Self.opensslKey(Self.secret)
        #expect(key.count == 64)
        let peer = PeerKey(secret: Self.secret)

        let challenge = peer.challenge(address: "10.99.0.12:9001", now: 1_800_000_000)
        let (time, nonce, mac) = Self.parts(challenge.header)
        #expect(time == "1800000000" && nonce == challenge.nonce && nonce.count == 32)
        #expect(mac == (try Self.opensslHMAC(key: key, Data("deckhand probe v1\n1800000000\n\(nonce)\n10.99.0.12:9001".utf8))))

        let body = Array(#"{"NodeName":"node2","NodeRole":"worker","Version":"1.0"}"#.utf8)
        let answer = peer.answerProof(nonce: nonce, body: body)
        #expect(answer == (try Self.opensslHMAC(key: key, Data("deckhand member v1\n\(nonce)\n".utf8) + Data(body))))

        let proof = peer.forwardProof(method: "GET", uri: "/v1.41/containers/json?all=1", hop: "list", node: "node3", now: 1_800_000_000)
        let forward = Self.parts(proof)
        #expect(forward.mac == (try Self.opensslHMAC(
            key: key, Data("deckhand forward v1\n1800000000\n\(forward.nonce)\nnode3\nGET\n/v1.41/containers/json?all=1\nlist".utf8))))
    }

    @Test("a challenge is accepted once, fresh, for the address it names, under the same secret")
    func challenges() {
        let now: Int64 = 1_800_000_000
        let prober = PeerKey(secret: Self.secret)
        let challenge = prober.challenge(address: "10.99.0.12:9001", now: now)
        #expect(PeerKey(secret: "another secret").admitChallenge(challenge.header, address: "10.99.0.12:9001", now: now) == nil)
        let responder = PeerKey(secret: Self.secret)
        #expect(responder.admitChallenge(challenge.header, address: "10.99.0.1:9001", now: now) == nil, "relayed from another address")
        #expect(responder.admitChallenge(challenge.header, address: "10.99.0.12:9001", now: now + 31) == nil, "too old")
        #expect(responder.admitChallenge(challenge.header, address: "10.99.0.12:9001", now: now) == challenge.nonce)
        #expect(responder.admitChallenge(challenge.header, address: "10.99.0.12:9001", now: now) == nil, "replayed")
        #expect(responder.admitChallenge(nil, address: "10.99.0.12:9001", now: now) == nil)
        #expect(responder.admitChallenge("x.y.z", address: "10.99.0.12:9001", now: now) == nil)

        // The answer proves the responder holds the key, for this nonce and body only.
        let body = Array(#"{"NodeName":"node2","NodeRole":"worker"}"#.utf8)
        let proof = responder.answerProof(nonce: challenge.nonce, body: body)
        #expect(prober.isProven(answer: body, proof: proof, nonce: challenge.nonce))
        #expect(!prober.isProven(answer: body, proof: proof, nonce: PeerKey(secret: "x").challenge(address: "a:1").nonce))
        #expect(!prober.isProven(answer: Array(#"{"NodeName":"node4","NodeRole":"worker"}"#.utf8), proof: proof, nonce: challenge.nonce))
        #expect(!prober.isProven(answer: body, proof: nil, nonce: challenge.nonce))
        #expect(!prober.isProven(answer: body, proof: PeerKey(secret: "another").answerProof(nonce: challenge.nonce, body: body), nonce: challenge.nonce))
    }

    @Test("forwarding proofs never share a nonce, whichever key makes them")
    func forwardingNoncesAreUnique() {
        let first = PeerKey(secret: Self.secret)
        let nonces = (0..<20_000).map { index in
            PeerKeyTests.parts(first.forwardProof(method: "GET", uri: "/_ping", hop: "1", node: "node2", now: 1_800_000_000 + Int64(index % 7))).nonce
        }
        #expect(Set(nonces).count == nonces.count)
        #expect(nonces.allSatisfy { $0.utf8.count == 32 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } })
        // Another key in the same process shares the count (another process would have
        // its own random half).
        let second = PeerKey(secret: Self.secret)
        let more = (0..<1_000).map { _ in
            PeerKeyTests.parts(second.forwardProof(method: "GET", uri: "/_ping", hop: "1", node: "node2", now: 1_800_000_000)).nonce
        }
        #expect(Set(nonces).isDisjoint(with: more))
    }

    @Test("a forwarding proof holds within the time window, once, for its request and node only")
    func forwardingWindow() {
        let now: Int64 = 1_800_000_000
        let sender = PeerKey(secret: Self.secret)
        let receiver = PeerKey(secret: Self.secret)
        func proof(at time: Int64) -> String {
            sender.forwardProof(method: "GET", uri: "/v1.41/containers/json", hop: "list", node: "node2", now: time)
        }
        func admits(_ proof: String?, method: String = "GET", uri: String = "/v1.41/containers/json", hop: String = "list",
                    node: String = "node2", at time: Int64 = now) -> Bool {
            receiver.admitForwarded(proof: proof, method: method, uri: uri, hop: hop, node: node, now: time)
        }
        #expect(!admits(proof(at: now - PeerKey.window - 1)), "older than the window")
        #expect(!admits(proof(at: now + PeerKey.window + 1)), "from too far in the future")
        #expect(admits(proof(at: now - PeerKey.window)))
        #expect(admits(proof(at: now + PeerKey.window)))
        let once = proof(at: now)
        #expect(admits(once))
        #expect(!admits(once), "replayed")
        #expect(!admits(proof(at: now), method: "DELETE"))
        #expect(!admits(proof(at: now), uri: "/v1.41/containers/abc?force=1"))
        #expect(!admits(proof(at: now), hop: "1"))
        #expect(!admits(proof(at: now), node: "node3"), "made out to another node")
        #expect(!admits(nil))
        #expect(!admits(PeerKey(secret: "wrong").forwardProof(method: "GET", uri: "/v1.41/containers/json", hop: "list", node: "node2", now: now)))
        // A proof whose time was tampered with does not verify.
        let parts = PeerKeyTests.parts(proof(at: now))
        #expect(!admits("\(now + 1).\(parts.nonce).\(parts.mac)"))
    }
}
