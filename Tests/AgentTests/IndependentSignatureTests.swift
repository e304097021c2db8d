import Foundation
import Proxy
import Testing
@testable import Agent

/// A key and signature made without Deckhand (fixtures/signatures: openssl, and Go's
/// crypto signing as Portainer's api/crypto/ecdsa.go does), so that a mistake shared by
/// Deckhand's signer and verifier (message, digest, hex, base64, r||s order) cannot pass.
struct IndependentPair: Decodable, CustomTestStringConvertible {
    var name: String
    var madeBy: String
    var secret: String?
    var publicKey: String
    var signature: String

    var testDescription: String { name }

    static let all: [IndependentPair] = {
        let file = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/signatures/pairs.json")
        // A missing or broken fixture is a failure of the suite, not an empty list.
        return try! JSONDecoder().decode([IndependentPair].self, from: Data(contentsOf: file))
    }()

    var headers: [String: String] {
        [AgentHeaderName.publicKey: publicKey, AgentHeaderName.signature: signature]
    }

    /// The same pair with one byte changed: in r, in s, or in the key's point. Base64
    /// digits 0 and 44 each lie inside one byte (bits 0-5 and 264-269), so replacing one
    /// changes exactly one byte of r||s without going through Deckhand's codec.
    var oneByteChanged: [(what: String, headers: [String: String])] {
        func replacing(_ text: String, at offset: Int, with alphabet: String) -> String {
            var characters = Array(text)
            let old = characters[offset]
            characters[offset] = alphabet.first { $0 != old }!
            return String(characters)
        }
        let keyDigit = publicKey.count - 10  // inside the point's y, past the DER header
        return [
            ("r", [AgentHeaderName.publicKey: publicKey, AgentHeaderName.signature: replacing(signature, at: 0, with: "AB")]),
            ("s", [AgentHeaderName.publicKey: publicKey, AgentHeaderName.signature: replacing(signature, at: 44, with: "AB")]),
            ("key", [AgentHeaderName.publicKey: replacing(publicKey, at: keyDigit, with: "01"), AgentHeaderName.signature: signature]),
        ]
    }
}

@Suite("Signatures made by openssl and by Portainer's Go signing, against a real agent")
struct IndependentSignatureTests {
    @Test("the fixtures cover openssl and Go, the default message and a secret, and a short r")
    func fixturesCoverTheCases() {
        let pairs = IndependentPair.all
        #expect(Set(pairs.map(\.madeBy)) == ["openssl", "go"])
        for maker in ["openssl", "go"] {
            #expect(pairs.contains { $0.madeBy == maker && $0.secret == nil })
            #expect(pairs.contains { $0.madeBy == maker && $0.secret != nil })
        }
        // r below 2^248: its first byte is zero and must be kept, not dropped.
        #expect(pairs.contains { $0.signature.hasPrefix("A") })
    }

    @Test("an independently made pair is accepted; the same pair with one byte changed is refused", arguments: IndependentPair.all)
    func independentPair(_ pair: IndependentPair) async throws {
        for (what, headers) in pair.oneByteChanged {
            // A fresh agent each time, so that a refusal is about this pair and not
            // about another key being associated already.
            try await TestAgent.with(secret: pair.secret) { agent async throws in
                #expect(try agent.request("GET", "/_ping", headers: headers).status == 403, "\(what) changed")
                #expect(agent.server.services.verifier.associatedKey == nil)
                #expect(try agent.request("GET", "/_ping", headers: pair.headers).status == 200)
            }
        }
        try await TestAgent.with(secret: pair.secret) { agent async throws in
            #expect(try agent.request("GET", "/_ping", headers: pair.headers).status == 200)
            #expect(try agent.request("GET", "/_ping", headers: pair.headers).status == 200)
            if pair.secret == nil { #expect(agent.server.services.verifier.associatedKey == pair.publicKey) }
        }
        // Signed for the other mode's message: refused.
        try await TestAgent.with(secret: pair.secret == nil ? "deckhand-fixture-secret" : nil) { agent async throws in
            #expect(try agent.request("GET", "/_ping", headers: pair.headers).status == 403)
        }
    }
}
