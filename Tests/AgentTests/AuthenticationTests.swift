import ASCIIText
import Foundation
import NIOCore
import Proxy
import Testing
@testable import Agent
import TestCommands

@Suite("Portainer signature authentication against a real agent")
struct AuthenticationTests {
    @Test("an unsigned request is refused with Portainer's 403 body")
    func unsignedIsRefused() async throws {
        try await TestAgent.with() { agent async throws in
            let reply = try agent.request("GET", "/_ping")
            #expect(reply.status == 403)
            let body = try #require(try reply.json() as? [String: String])
            #expect(body["message"] == "Missing request signature headers")
            #expect(body["details"] == "Unauthorized")
            #expect(reply.headers["portainer-agent-api-version"] == "2")
        }
    }

    @Test("the first valid key is associated and a second key is then refused")
    func trustOnFirstUse() async throws {
        try await TestAgent.with() { agent async throws in
            let first = SigningKey(), second = SigningKey()
            #expect(try agent.request("GET", "/_ping", key: first).status == 200)
            let refused = try agent.request("GET", "/_ping", key: second)
            #expect(refused.status == 403)
            #expect((try refused.json() as? [String: String])?["message"] == "Invalid request signature")
            // The associated key keeps working, with a fresh signature too.
            #expect(try agent.request("GET", "/_ping", key: first).status == 200)
            #expect(try agent.request("GET", "/_ping", key: first).status == 200)
            #expect(agent.server.services.verifier.associatedKey == first.publicKeyHex)
        }
    }

    @Test("a garbage signature associates nothing (the original agent's lock-out bug)")
    func garbageSignatureAssociatesNothing() async throws {
        try await TestAgent.with() { agent async throws in
            let attacker = SigningKey(), portainer = SigningKey()
            var forged = attacker.headers()
            forged["X-PortainerAgent-Signature"] = String(repeating: "A", count: 86)
            #expect(try agent.request("GET", "/_ping", headers: forged).status == 403)
            // A signature made by another key over the right message is just as bad.
            forged["X-PortainerAgent-Signature"] = portainer.headers()["X-PortainerAgent-Signature"]
            #expect(try agent.request("GET", "/_ping", headers: forged).status == 403)
            #expect(agent.server.services.verifier.associatedKey == nil)
            #expect(try agent.request("GET", "/_ping", key: portainer).status == 200)
        }
    }

    @Test("malformed headers are refused: bad hex, bad base64, wrong lengths")
    func malformedHeaders() async throws {
        try await TestAgent.with() { agent async throws in
            let key = SigningKey()
            let good = key.headers()
            let cases: [[String: String]] = [
                ["X-PortainerAgent-PublicKey": "zz" + good["X-PortainerAgent-PublicKey"]!.dropFirst(2), "X-PortainerAgent-Signature": good["X-PortainerAgent-Signature"]!],
                ["X-PortainerAgent-PublicKey": good["X-PortainerAgent-PublicKey"]!, "X-PortainerAgent-Signature": "!!!!"],
                ["X-PortainerAgent-PublicKey": "abc", "X-PortainerAgent-Signature": good["X-PortainerAgent-Signature"]!],
                ["X-PortainerAgent-PublicKey": good["X-PortainerAgent-PublicKey"]!, "X-PortainerAgent-Signature": String(good["X-PortainerAgent-Signature"]!.dropLast(4))],
            ]
            for headers in cases {
                #expect(try agent.request("GET", "/_ping", headers: headers).status == 403)
            }
            #expect(try agent.request("GET", "/_ping", headers: ["X-PortainerAgent-PublicKey": good["X-PortainerAgent-PublicKey"]!]).status == 403)
            #expect(agent.server.services.verifier.associatedKey == nil)
            #expect(try agent.request("GET", "/_ping", key: key).status == 200)
        }
    }

    @Test("malformed headers are refused without any signature check; a well-formed forgery costs one")
    func malformedHeadersCostNoCheck() async throws {
        try await TestAgent.with() { agent async throws in
            let verifier = agent.server.services.verifier
            for headers in SignatureVerifierTests.malformedPairs(of: SigningKey()) {
                #expect(try agent.request("GET", "/_ping", headers: headers).status == 403)
            }
            #expect(verifier.signatureChecks == 0)
            // Right shape, wrong signer: this one has to be checked, and is counted.
            let attacker = SigningKey(), portainer = SigningKey()
            var forged = attacker.headers()
            forged[AgentHeaderName.signature] = portainer.headers()[AgentHeaderName.signature]
            #expect(try agent.request("GET", "/_ping", headers: forged).status == 403)
            #expect(verifier.signatureChecks == 1)
            #expect(try agent.request("GET", "/_ping", key: portainer).status == 200)
            #expect(verifier.signatureChecks == 2)
        }
    }

    @Test("a burst of failures from one peer logs about one line a second, with the peer and every failure counted")
    func failuresAreLoggedPerPeerOncePerSecond() throws {
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "LOG_LEVEL": "WARN", "LOG_MODE": "JSON",
        ])
        defer { agent.stop() }
        var bad = SigningKey().headers()
        bad[AgentHeaderName.signature] = String(repeating: "A", count: 86)
        let urls = Array(repeating: ["-o", "/dev/null", agent.baseURL + "/_ping"], count: 40).flatMap { $0 }
        let headerArguments = bad.flatMap { ["-H", "\($0.key): \($0.value)"] }
        var sent = 0
        let started = Date()
        // Keep-alive bursts of 40 refused requests for 2.5 s.
        while Date().timeIntervalSince(started) < 2.5 {
            let burst = try Command.run("curl", ["-sk", "--http1.1", "-w", "%{http_code}\n"] + headerArguments + urls)
            let codes = burst.output.split(separator: "\n")
            #expect(codes.count == 40 && codes.allSatisfy { $0 == "403" }, "\(codes)")
            sent += codes.count
        }
        let elapsed = Date().timeIntervalSince(started)
        // One more after a pause: it is logged at once, with what the burst's last second held back.
        usleep(1_200_000)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: bad).status == 403)
        sent += 1
        usleep(300_000)
        let lines = agent.logLines().compactMap { line -> [String: String]? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
                  object["message"] == "authentication failed" else { return nil }
            return object
        }
        #expect(sent > 100)
        #expect(!lines.isEmpty)
        #expect(lines.count <= Int(elapsed.rounded(.up)) + 2, "\(lines.count) lines for \(elapsed) s")
        #expect(lines.allSatisfy { $0["peer"] == "127.0.0.1" && $0["reason"] == "invalid signature" })
        // Each line stands for itself and the failures it folded in: none is lost.
        #expect(lines.reduce(0) { $0 + 1 + (Int($1["suppressed"] ?? "") ?? -1_000_000) } == sent)
        #expect(Int(lines.last?["suppressed"] ?? "") ?? 0 > 0)
    }

    @Test("secret mode accepts every key that signs the secret and refuses the default message")
    func sharedSecret() async throws {
        try await TestAgent.with(secret: "s3cret-for-tests") { agent async throws in
            let one = SigningKey(), two = SigningKey()
            #expect(try agent.request("GET", "/_ping", key: one, secret: "s3cret-for-tests").status == 200)
            #expect(try agent.request("GET", "/_ping", key: two, secret: "s3cret-for-tests").status == 200)
            #expect(try agent.request("GET", "/_ping", key: one, secret: "wrong").status == 403)
            #expect(try agent.request("GET", "/_ping", key: SigningKey()).status == 403)
            #expect(agent.server.services.verifier.associatedKey == nil)
        }
    }

    @Test("/ping is public, answers 204 and carries the agent headers")
    func publicPing() async throws {
        try await TestAgent.with() { agent async throws in
            for path in ["/ping", "/v2/ping"] {
                let reply = try agent.request("GET", path)
                #expect(reply.status == 204)
                #expect(reply.headers["portainer-agent"] == AgentVersion.deckhand)
                #expect(reply.headers["portainer-agent-api-version"] == "2")
                #expect(reply.headers["portainer-agent-platform"] == "1")
            }
            #expect(agent.server.services.verifier.associatedKey == nil)
        }
    }
}

@Suite("Signature verification unit behaviour")
struct SignatureVerifierTests {
    @Test("a verified pair is cached: repeated checks cost no ECDSA work")
    func cacheRemembersPairs() throws {
        let verifier = SignatureVerifier(secret: nil, cacheLimit: 2)
        let key = SigningKey()
        let headers = key.headers()
        try verifier.verify(publicKey: headers["X-PortainerAgent-PublicKey"], signature: headers["X-PortainerAgent-Signature"])
        #expect(verifier.cachedPairCount == 1)
        try verifier.verify(publicKey: headers["X-PortainerAgent-PublicKey"], signature: headers["X-PortainerAgent-Signature"])
        #expect(verifier.cachedPairCount == 1)
        for _ in 0..<3 {
            let fresh = key.headers()
            try verifier.verify(publicKey: fresh["X-PortainerAgent-PublicKey"], signature: fresh["X-PortainerAgent-Signature"])
        }
        #expect(verifier.cachedPairCount == 2)
    }

    /// Headers that cannot be a Portainer key and signature, built from a real pair.
    static func malformedPairs(of key: SigningKey) -> [[String: String]] {
        let good = key.headers()
        let hex = good[AgentHeaderName.publicKey]!, signature = good[AgentHeaderName.signature]!
        func pair(_ key: String, _ signature: String) -> [String: String] {
            [AgentHeaderName.publicKey: key, AgentHeaderName.signature: signature]
        }
        return [
            pair("zz" + hex.dropFirst(2), signature),                       // bad hex in the DER header
            pair(String(hex.dropLast(2)) + "zz", signature),                // bad hex in the point
            pair("abc", signature),                                         // odd length
            pair(String(hex.dropLast(2)), signature),                       // one byte short
            pair(hex + "00", signature),                                    // one byte long
            pair(String(repeating: "0", count: 182), signature),            // right length, not a P-256 key
            pair(String(repeating: "ab", count: 4096), signature),          // 8 KiB of hex
            pair(hex, "!!!!"),                                              // bad base64, short
            pair(hex, String(signature.dropLast(1)) + "!"),                 // bad base64 digit
            pair(hex, String(signature.dropLast(4))),                       // 61 bytes
            pair(hex, signature + "AAAA"),                                  // 67 bytes
            pair(hex, String(signature.prefix(40)) + "=" + signature.dropFirst(41)), // padding inside
            pair(hex, String(repeating: "A", count: 8192)),                 // 8 KiB of base64
        ]
    }

    @Test("malformed pairs are refused on their shape, before any key is parsed")
    func malformedPairsAreRefusedOnShape() {
        let verifier = SignatureVerifier(secret: nil)
        let key = SigningKey()
        for headers in Self.malformedPairs(of: key) {
            #expect(throws: SignatureVerifier.Failure.malformedHeaders) {
                try verifier.verify(publicKey: headers[AgentHeaderName.publicKey], signature: headers[AgentHeaderName.signature])
            }
        }
        #expect(verifier.signatureChecks == 0)
        let good = key.headers()
        // Upper-case hex and a padded signature are the same pair.
        var padded = good
        padded[AgentHeaderName.publicKey] = good[AgentHeaderName.publicKey]!.uppercased()
        padded[AgentHeaderName.signature] = good[AgentHeaderName.signature]! + "=="
        for headers in [good, padded] {
            #expect(SignatureVerifier.isWellFormed(publicKeyHex: headers[AgentHeaderName.publicKey]!, signatureBase64: headers[AgentHeaderName.signature]!))
            #expect(throws: Never.self) {
                try verifier.verify(publicKey: headers[AgentHeaderName.publicKey], signature: headers[AgentHeaderName.signature])
            }
        }
        #expect(verifier.signatureChecks == 2)
    }

    @Test("unpadded base64 and hex round trips")
    func encodings() {
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8($0 * 37 & 0xFF) }
            #expect(Base64Unpadded.decode(Base64Unpadded.encode(bytes)) == bytes)
            #expect(HexEncoding.decode(HexEncoding.encode(bytes)) == bytes)
        }
        #expect(HexEncoding.decode("0g") == nil)
        #expect(Base64Unpadded.decode("A") == nil)
    }
}

@Suite("Failed authentication log throttle")
struct AuthenticationFailureLogTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func at(_ seconds: Double) -> NIODeadline {
        start + .nanoseconds(Int64(seconds * 1e9))
    }

    @Test("one line per peer per second, the failures in between folded into the next")
    func onePeer() {
        let log = AuthenticationFailureLog(logger: .init(label: "test"))
        var lines: [AuthenticationFailureLog.Line] = []
        for step in 0..<100 { lines += log.record(peer: "192.0.2.1", at: Self.at(Double(step) * 0.005)) }
        #expect(lines == [.init(peer: "192.0.2.1", suppressed: 0)])
        // Another peer is not held back by the first.
        #expect(log.record(peer: "192.0.2.2", at: Self.at(0.6)) == [.init(peer: "192.0.2.2", suppressed: 0)])
        #expect(log.record(peer: "192.0.2.1", at: Self.at(0.99)).isEmpty)
        #expect(log.record(peer: "192.0.2.1", at: Self.at(1.0)) == [.init(peer: "192.0.2.1", suppressed: 100)])
        #expect(log.record(peer: "192.0.2.1", at: Self.at(2.5)) == [.init(peer: "192.0.2.1", suppressed: 0)])
    }

    @Test("failures are counted per IPv4 address and per IPv6 /64: a host cycling through its /64 is one peer")
    func peersBySource() throws {
        var generator = SystemRandomNumberGenerator()
        let keys = try (0..<1000).map { _ in
            let host = (0..<4).map { _ in String(UInt16.random(in: 0...UInt16.max, using: &generator), radix: 16) }.joined(separator: ":")
            return AuthenticationFailureLog.peerKey(try SocketAddress(ipAddress: "2001:db8:1:2:" + host, port: 1))
        }
        #expect(Set(keys) == ["2001:db8:1:2::/64"], "\(Set(keys).prefix(3))")
        #expect(AuthenticationFailureLog.peerKey(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1)) == "2001:db8:1:3::/64")
        #expect(AuthenticationFailureLog.peerKey(try SocketAddress(ipAddress: "192.0.2.1", port: 1)) == "192.0.2.1")
        #expect(AuthenticationFailureLog.peerKey(try SocketAddress(ipAddress: "::ffff:192.0.2.2", port: 1)) == "192.0.2.2")
    }

    @Test("a flood from ever new addresses keeps the table bounded and the log at one extra line a second")
    func cyclingAddresses() {
        let log = AuthenticationFailureLog(logger: .init(label: "test"), capacity: 64)
        var lines: [AuthenticationFailureLog.Line] = []
        for index in 0..<100_000 {
            lines += log.record(peer: "10.\(index >> 16).\((index >> 8) & 255).\(index & 255)", at: Self.at(Double(index) * 0.00001))
            if index % 1000 == 0 { #expect(log.trackedPeers <= 64) }
        }
        // 100,000 failures over 1 s: 64 peers get their line, everyone else shares one.
        #expect(lines.filter { $0.peer != AuthenticationFailureLog.otherPeers }.count == 64)
        #expect(lines.filter { $0.peer == AuthenticationFailureLog.otherPeers }.count == 1)
        // Once the first peers' second is over, new peers get their own lines again,
        // and the pending count of a forgotten peer is not lost.
        #expect(log.record(peer: "10.0.0.5", at: Self.at(1.1)).count == 1)
        #expect(log.record(peer: "10.0.0.6", at: Self.at(1.2)).count == 1)
        #expect(log.record(peer: "10.0.0.6", at: Self.at(1.3)).isEmpty)
        let later = log.record(peer: "198.51.100.7", at: Self.at(2.5))
        #expect(later.contains(.init(peer: "198.51.100.7", suppressed: 0)))
        #expect(later.contains(.init(peer: "10.0.0.6", suppressed: 1, isFailure: false)))
        #expect(log.trackedPeers <= 64)
    }
}
