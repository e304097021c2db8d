import ASCIIText
import Crypto
import FoundationEssentials
import NIOConcurrencyHelpers
import Proxy
import Synchronization

/// Portainer's request signature: an ECDSA P-256 signature over `MD5(message)`,
/// where the message is "Portainer-App" or the shared `AGENT_SECRET`. Several secrets
/// may be valid at once (`AGENT_SECRET_FILE`, one per line, while a Swarm rotates),
/// and they may be replaced while the agent runs; a pair verified under a secret
/// that is gone is verified again (and refused).
///
/// Trust on first use associates the first key whose signature verifies (never a
/// key that merely parses); with a secret, every key that signs it is accepted.
/// A (key, signature) pair that verified once is remembered, since Portainer sends
/// the same pair on every request. Headers that cannot be a P-256 key and a raw
/// signature are refused on their bytes alone, before any allocation or curve work.
final class SignatureVerifier: Sendable {
    enum Mode: Sendable, Equatable {
        case trustOnFirstUse
        case sharedSecret
    }

    enum Failure: Error, Equatable {
        case missingHeaders
        /// Not hex of an uncompressed P-256 key, or not base64 of a 64-byte signature.
        case malformedHeaders
        case invalidSignature
        /// Trust on first use expired with nobody associated (`AGENT_SECRET_TIMEOUT`).
        case associationClosed
    }

    static let defaultMessage = "Portainer-App"

    let mode: Mode
    private let cacheLimit: Int
    private let state: NIOLockedValueBox<State>
    private let checks = Atomic<Int>(0)
    /// Counts `replaceSecrets`, readable without the lock: a connection that remembers a
    /// pair it had verified checks it again once this moves (`SignatureCheck`).
    private let secretsGeneration = Atomic<Int>(0)

    private struct State {
        /// What a signature may sign: MD5 of each secret, or of the default message.
        var digests: [Insecure.MD5Digest]
        /// Changes with `digests`: a pair checked against older digests is not remembered.
        var generation = 0
        var associatedKey: String?
        var associationClosed = false
        /// Each remembered pair, with the digest its signature signs.
        var verified: [String: Insecure.MD5Digest] = [:]
        var verifiedOrder: [String] = []
    }

    /// No secrets: trust on first use of the default message.
    init(secrets: [String], cacheLimit: Int = 1024) {
        self.mode = secrets.isEmpty ? .trustOnFirstUse : .sharedSecret
        self.cacheLimit = cacheLimit
        self.state = NIOLockedValueBox(State(digests: Self.digests(secrets)))
    }

    convenience init(secret: String?, cacheLimit: Int = 1024) {
        self.init(secrets: secret.map { [$0] } ?? [], cacheLimit: cacheLimit)
    }

    private static func digests(_ secrets: [String]) -> [Insecure.MD5Digest] {
        (secrets.isEmpty ? [defaultMessage] : secrets).map { Insecure.MD5.hash(data: Data($0.utf8)) }
    }

    /// Makes `secrets` the valid ones (shared-secret mode only; never none): pairs
    /// remembered under the old set are forgotten.
    func replaceSecrets(_ secrets: [String]) {
        guard mode == .sharedSecret, !secrets.isEmpty else { return }
        state.withLockedValue { state in
            state.digests = Self.digests(secrets)
            state.generation += 1
            state.verified = [:]
            state.verifiedOrder = []
        }
        secretsGeneration.add(1, ordering: .releasing)
    }

    /// Moves whenever the secrets are replaced.
    var generation: Int { secretsGeneration.load(ordering: .acquiring) }

    /// The key associated by trust on first use, hex-encoded, if any.
    var associatedKey: String? {
        state.withLockedValue { $0.associatedKey }
    }

    /// Closes trust on first use if no key has been associated yet; true when it did.
    /// After that, only a restart lets a Portainer associate.
    func closeAssociationIfUnused() -> Bool {
        guard mode == .trustOnFirstUse else { return false }
        return state.withLockedValue { state in
            guard state.associatedKey == nil else { return false }
            state.associationClosed = true
            return true
        }
    }

    /// How many verified pairs are remembered (bounded by the cache limit).
    var cachedPairCount: Int {
        state.withLockedValue { $0.verified.count }
    }

    /// How many pairs went as far as parsing the key and checking the signature
    /// (the only costly step); malformed headers never count here.
    var signatureChecks: Int {
        checks.load(ordering: .relaxed)
    }

    /// Whether a signature over `digest` (what `verify` returned) is still accepted:
    /// false once a rotation has dropped the secret it signs.
    func accepts(_ digest: Insecure.MD5Digest) -> Bool {
        state.withLockedValue { $0.digests.contains(digest) }
    }

    /// Checks one request's headers and returns the digest the signature signs (which
    /// secret, or the default message). Cheap for repeated pairs and for foreign keys
    /// once a key is associated (no ECDSA work for either), and for malformed ones.
    @discardableResult
    func verify(publicKey: String?, signature: String?) throws(Failure) -> Insecure.MD5Digest {
        guard let publicKey, let signature, !publicKey.isEmpty, !signature.isEmpty else {
            throw .missingHeaders
        }
        guard Self.isWellFormed(publicKeyHex: publicKey, signatureBase64: signature) else {
            throw .malformedHeaders
        }
        let key = publicKey.lowercased()
        let cacheKey = key + ":" + signature
        enum Known { case refused, closed, remembered(Insecure.MD5Digest), unknown([Insecure.MD5Digest], generation: Int) }
        let known = state.withLockedValue { state -> Known in
            if state.associationClosed { return .closed }
            if mode == .trustOnFirstUse, let associated = state.associatedKey, associated != key { return .refused }
            if let digest = state.verified[cacheKey] { return .remembered(digest) }
            return .unknown(state.digests, generation: state.generation)
        }
        let digests: [Insecure.MD5Digest]
        let generation: Int
        switch known {
        case .closed: throw .associationClosed
        case .refused: throw .invalidSignature
        case .remembered(let digest): return digest
        case .unknown(let current, let at): (digests, generation) = (current, at)
        }
        checks.add(1, ordering: .relaxed)
        guard let signed = digests.first(where: { Self.isValid(publicKeyHex: key, signatureBase64: signature, digest: $0) }) else {
            throw .invalidSignature
        }
        let accepted = state.withLockedValue { state -> Bool in
            if mode == .trustOnFirstUse {
                // Two first requests may race with different valid keys: the first to
                // get here wins, the other is refused like any foreign key.
                if let associated = state.associatedKey, associated != key { return false }
                state.associatedKey = key
            }
            // Checked against secrets replaced meanwhile: valid a moment ago, not remembered.
            if state.generation == generation, state.verified.updateValue(signed, forKey: cacheKey) == nil {
                state.verifiedOrder.append(cacheKey)
                if state.verifiedOrder.count > cacheLimit {
                    state.verified[state.verifiedOrder.removeFirst()] = nil
                }
            }
            return true
        }
        guard accepted else { throw .invalidSignature }
        return signed
    }

    /// The DER header of an uncompressed P-256 SubjectPublicKeyInfo (id-ecPublicKey,
    /// prime256v1, a 66-byte bit string starting with 0x04), as Portainer sends it.
    static let keyPrefixHex = Array("3059301306072a8648ce3d020106082a8648ce3d03010703420004".utf8)
    /// 91 bytes of key, 64 of signature (r and s) in unpadded base64.
    static let keyHexLength = 182
    static let signatureBase64Length = 86

    /// Whether the headers have the shape of a key and a signature: length, alphabet
    /// and the key's fixed DER header, read in place without allocating. Anything
    /// else cannot verify, so it costs a scan of at most a few hundred bytes.
    static func isWellFormed(publicKeyHex: String, signatureBase64: String) -> Bool {
        var key = publicKeyHex.utf8.makeIterator()
        var count = 0
        while let byte = key.next() {
            guard count < keyHexLength else { return false }
            if count < keyPrefixHex.count {
                // The header's digits, in either case.
                guard ASCII.lowercased(byte) == keyPrefixHex[count] else { return false }
            } else {
                guard ASCII.hexValue(byte) != nil else { return false }
            }
            count += 1
        }
        guard count == keyHexLength else { return false }
        // Go writes it unpadded; a padded form ("==") decodes to the same bytes.
        let signature = signatureBase64.utf8
        let length = signature.count
        guard length == signatureBase64Length || length == signatureBase64Length + 2 else { return false }
        for (index, byte) in signature.enumerated() {
            if index >= signatureBase64Length {
                guard byte == UInt8(ascii: "=") else { return false }
            } else {
                guard Base64Unpadded.isDigit(byte) else { return false }
            }
        }
        return true
    }

    /// Parses and checks one well-formed pair.
    static func isValid(publicKeyHex: String, signatureBase64: String, digest: Insecure.MD5Digest) -> Bool {
        guard let der = HexEncoding.decode(publicKeyHex),
              let raw = Base64Unpadded.decode(signatureBase64), raw.count == 64,
              let key = try? P256.Signing.PublicKey(derRepresentation: der),
              let signature = try? P256.Signing.ECDSASignature(rawRepresentation: raw)
        else { return false }
        return key.isValidSignature(signature, for: digest)
    }
}

/// Standard base64 as Go's `RawStdEncoding` writes it: no `=` padding.
enum Base64Unpadded {
    static func decode(_ text: String) -> [UInt8]? {
        var padded = text
        guard !text.contains("=") || text.hasSuffix("=") else { return nil }
        let remainder = padded.utf8.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { padded += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: padded).map(Array.init)
    }

    /// One of the 64 digits of the standard alphabet (not the `=` pad).
    static func isDigit(_ c: UInt8) -> Bool {
        ASCII.isAlphanumeric(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
    }

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }
}
