import Foundation
import Testing
@testable import Agent

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
