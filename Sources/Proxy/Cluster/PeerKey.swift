import ASCIIText
import Crypto
import CryptoExtras
import FoundationEssentials
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Synchronization

/// How agents that share `AGENT_SECRET` prove it to each other without sending it:
/// HMAC-SHA256 under a key derived from the secret (HKDF-SHA256, no salt, info
/// `keyLabel`), over a fresh nonce and what the proof vouches for.
///
/// - A probe carries a challenge, `<unix time>.<nonce>.<MAC("deckhand probe v1",
///   time, nonce, address probed)>`: only an agent that holds the key is told who
///   the prober is, and only when it is the address the prober dialled (a relay to
///   another agent does not pass).
/// - The answer carries `MAC("deckhand member v1", the prober's nonce, body)`: the
///   prober adopts only a peer that holds the key, and cannot be given an old answer.
/// - A forwarded request carries `<unix time>.<nonce>.<MAC("deckhand forward v1",
///   time, nonce, node it is for, method, URI, hop value)>`.
///
/// While a Swarm rotates its secret, an agent may hold several (`AGENT_SECRET_FILE`):
/// each MAC is then sent once per key, `.`-separated, and one that matches any key of
/// the receiver's proves the sender. So an agent with the old and new secrets and one
/// with only the old still trust each other; agents sharing no secret do not.
///
/// Times more than `window` seconds off are refused, and so is a nonce seen within
/// it, so a captured proof cannot be replayed. Every field is `\n`-separated; none
/// can contain one (HTTP heads cannot, node names are host names).
public final class PeerKey: Sendable {
    /// The HKDF info string: the key is for this and nothing else.
    public static let keyLabel = "deckhand peer key v1"
    /// How far a proof's time may be from this agent's clock, either way, in seconds.
    public static let window: Int64 = 30
    /// Nonces remembered at most; past it the oldest goes first (see `ReplayWindow`).
    static let replayLimit = 65536

    /// The most secrets an agent holds at once, and so MACs in one proof.
    public static let maxSecrets = 8

    /// The salt of the certificate keys (scrypt): they are for this and nothing else.
    public static let certificateKeySalt = "deckhand certificate key v2"
    /// scrypt's cost for a certificate key: N = 2^15, r = 8, p = 1, so 32 MiB and about
    /// 0.13 s of a core for each secret, once per process (`certificateKey`), and as much
    /// for every guess of someone who tries secrets against a served certificate.
    public static let certificateKeyCost = (rounds: 1 << 15, blockSize: 8, parallelism: 1)

    /// Each secret's keys, with an HMAC started under each: a MAC copies one rather
    /// than setting the key up again (a block of SHA-256 per MAC, per member of every fan-out).
    private struct Keys {
        /// Under the HKDF keys: probes, answers, forwarded requests.
        var proofs: [StartedHMAC]
        /// Each proof key's name, in the same order.
        var ids: [KeyID]
        /// What a Portainer signature under each secret signs (MD5 of the secret, as
        /// `SignatureVerifier` holds it), in the same order.
        var signatureDigests: [Insecure.MD5Digest]
        /// Under the scrypt keys: the peer certificate's names.
        var certificates: [StartedHMAC]
    }

    /// Names one secret's proof key without showing it (a MAC of a fixed label under
    /// it): which key admitted a forwarded request, so that a connection that carried
    /// one can be closed once a rotation drops that secret (`holds`).
    public struct KeyID: Hashable, Sendable {
        fileprivate let digest: SHA256.Digest
    }

    private let started: NIOLockedValueBox<Keys>
    private let seen = NIOLockedValueBox(ReplayWindow())
    private let generations = NIOLockedValueBox(0)

    /// `secrets` must not be empty; past `maxSecrets` the rest are ignored.
    public init(secrets: [String]) {
        precondition(!secrets.isEmpty, "a peer key needs a secret")
        started = NIOLockedValueBox(Self.derive(secrets))
    }

    public convenience init(secret: String) {
        self.init(secrets: [secret])
    }

    /// Makes `secrets` the ones this agent proves and accepts (a rotation); ignored when empty.
    public func replaceSecrets(_ secrets: [String]) {
        guard !secrets.isEmpty else { return }
        let derived = Self.derive(secrets)
        started.withLockedValue { $0 = derived }
        generations.withLockedValue { $0 += 1 }
    }

    /// Each secret's keys, with an HMAC started under each.
    private static func derive(_ secrets: [String]) -> Keys {
        let secrets = Array(secrets.prefix(maxSecrets))
        let proofs = secrets.map {
            StartedHMAC(key: HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: Data($0.utf8)), info: Data(keyLabel.utf8), outputByteCount: 32))
        }
        return Keys(
            proofs: proofs, ids: proofs.map { KeyID(digest: authenticationCode($0, ["deckhand key id v1"])) },
            signatureDigests: secrets.map { Insecure.MD5.hash(data: Data($0.utf8)) },
            certificates: secrets.map { StartedHMAC(key: certificateKey($0)) })
    }

    private var currentKeys: [StartedHMAC] { started.withLockedValue { $0.proofs } }

    /// The certificate keys made in this process, newest last (a rotation, tests).
    private static let certificateKeys = NIOLockedValueBox<[(secret: String, key: SymmetricKey)]>([])

    /// The key a secret's certificate MACs are made under: scrypt of the secret with
    /// `certificateKeySalt`, at `certificateKeyCost`. Not HKDF, as the proofs' key is:
    /// a peer certificate is served to whoever asks for it, so its MACs let anyone
    /// try secrets offline, and each try must cost what a secret's derivation costs.
    /// Made once per secret in a process (a few are kept).
    static func certificateKey(_ secret: String) -> SymmetricKey {
        if let made = certificateKeys.withLockedValue({ $0.first { $0.secret == secret }?.key }) { return made }
        let cost = certificateKeyCost
        let key: SymmetricKey
        do {
            key = try KDF.Scrypt.deriveKey(
                from: Array(secret.utf8), salt: Array(certificateKeySalt.utf8), outputByteCount: 32, rounds: cost.rounds,
                blockSize: cost.blockSize, parallelism: cost.parallelism)
        } catch {
            // Only an allocation of its 32 MiB can fail with these parameters.
            fatalError("scrypt could not derive the peer certificate key: \(error)")
        }
        certificateKeys.withLockedValue { made in
            made.removeAll { $0.secret == secret }
            made.append((secret, key))
            if made.count > 2 * maxSecrets { made.removeFirst() }
        }
        return key
    }

    public static var now: Int64 { Int64(time(nil)) }

    // MARK: Probes

    /// A challenge for the probe of `address` ("host:port" as dialled); the nonce
    /// checks the answer (`isProven`).
    public func challenge(address: String, now: Int64 = PeerKey.now) -> (header: String, nonce: String) {
        let nonce = Self.freshNonce()
        let mac = self.mac(["deckhand probe v1", String(now), nonce, address])
        return ("\(now).\(nonce).\(mac)", nonce)
    }

    /// The challenge's nonce when it is valid, fresh and for `address` (this end's
    /// "host:port"); nil otherwise.
    public func admitChallenge(_ header: String?, address: String, now: Int64 = PeerKey.now) -> String? {
        guard let token = Token(header) else { return nil }
        return admit(token, now: now, fields: ["deckhand probe v1", token.time, token.nonce, address]) ? token.nonce : nil
    }

    /// The proof an answer `body` carries for the challenge with `nonce`.
    public func answerProof(nonce: String, body: some Sequence<UInt8>) -> String {
        let body = Data(body)
        return currentKeys.map { key in Self.answerMAC(key: key, nonce: nonce, body: body).withUnsafeBytes { HexEncoding.encode($0) } }.joined(separator: ".")
    }

    /// Whether `proof` is the answer proof of `body` for the challenge with `nonce`.
    public func isProven(answer body: some Sequence<UInt8>, proof: String?, nonce: String) -> Bool {
        !provenKeys(answer: body, proof: proof, nonce: nonce).isEmpty
    }

    /// Which of this agent's keys `proof` proves for `body` and the challenge with
    /// `nonce` (the secrets the answering peer shares with this agent); empty when none.
    public func provenKeys(answer body: some Sequence<UInt8>, proof: String?, nonce: String) -> Set<KeyID> {
        guard let proof, proof.utf8.count <= Self.maxSecrets * 65 else { return [] }
        let given = proof.split(separator: ".", omittingEmptySubsequences: false).map { HexEncoding.decode(String($0)) }
        guard given.allSatisfy({ $0?.count == SHA256.byteCount }) else { return [] }
        let body = Data(body)
        let keys = started.withLockedValue { $0 }
        var proven = Set<KeyID>()
        for (key, id) in zip(keys.proofs, keys.ids) {
            let expected = Self.answerMAC(key: key, nonce: nonce, body: body).withUnsafeBytes { Array($0) }
            if given.contains(where: { Self.equal(expected, $0!) }) { proven.insert(id) }
        }
        return proven
    }

    /// The key of the secret a Portainer signature over `digest` signs, when this agent holds it.
    public func key(signing digest: Insecure.MD5Digest) -> KeyID? {
        let keys = started.withLockedValue { $0 }
        return keys.signatureDigests.firstIndex(of: digest).map { keys.ids[$0] }
    }

    private static func answerMAC(key start: StartedHMAC, nonce: String, body: Data) -> SHA256.Digest {
        var mac = start
        var prefix = "deckhand member v1\n\(nonce)\n"
        prefix.withUTF8 { mac.update(UnsafeRawBufferPointer($0)) }
        body.withUnsafeBytes { mac.update($0) }
        return mac.finalize()
    }

    // MARK: Forwarded requests

    /// The proof header's value for one request forwarded to `node`'s agent.
    public func forwardProof(method: String, uri: String, hop: String, node: String, now: Int64 = PeerKey.now) -> String {
        let nonce = Self.countedNonce()
        let mac = self.mac(["deckhand forward v1", String(now), nonce, node, method, uri, hop])
        return "\(now).\(nonce).\(mac)"
    }

    /// Whether a request forwarded here, to `node` (this agent's name), carries a valid,
    /// fresh proof not seen before.
    public func admitForwarded(proof: String?, method: String, uri: String, hop: String, node: String, now: Int64 = PeerKey.now) -> Bool {
        admittingKey(proof: proof, method: method, uri: uri, hop: hop, node: node, now: now) != nil
    }

    /// The key under which a request forwarded here, to `node`, carries a valid, fresh
    /// proof not seen before; nil when it carries none.
    public func admittingKey(proof: String?, method: String, uri: String, hop: String, node: String, now: Int64 = PeerKey.now) -> KeyID? {
        guard let token = Token(proof) else { return nil }
        return admittingKey(token, now: now, fields: ["deckhand forward v1", token.time, token.nonce, node, method, uri, hop])
    }

    /// Whether `key` is still one of this agent's (no rotation has dropped its secret).
    public func holds(_ key: KeyID) -> Bool {
        started.withLockedValue { $0.ids.contains(key) }
    }

    /// Adds the proof to `head`, forwarded to `node`'s agent (its hop header set).
    public func sign(_ head: inout HTTPRequestHead, for node: String) {
        let hop = head.headers.first(name: AgentHeaderName.hop) ?? ""
        head.headers.replaceOrAdd(name: AgentHeaderName.proof, value: forwardProof(method: head.method.rawValue, uri: head.uri, hop: hop, node: node))
    }

    /// The key under which `head`, forwarded here to `node` (this agent), carries a
    /// valid proof; nil when it does not.
    public func admittingKey(_ head: HTTPRequestHead, node: String) -> KeyID? {
        admittingKey(
            proof: head.headers.first(name: AgentHeaderName.proof), method: head.method.rawValue, uri: head.uri,
            hop: head.headers.first(name: AgentHeaderName.hop) ?? "", node: node)
    }

    // MARK: Certificates

    /// The MACs that vouch for a public key (its SubjectPublicKeyInfo, DER) as an
    /// agent's, one per secret, under its certificate key (`certificateKey`):
    /// `MAC("deckhand certificate v2", hex SHA-256 of the SPKI)`. An agent's peer
    /// certificate carries them (`PeerCertificate`).
    public func certificateMACs(subjectPublicKeyInfo: [UInt8]) -> [[UInt8]] {
        let fields = ["deckhand certificate v2", HexEncoding.encode(SHA256.hash(data: subjectPublicKeyInfo))]
        return started.withLockedValue { $0.certificates }.map { key in Self.authenticationCode(key, fields).withUnsafeBytes { Array($0) } }
    }

    /// Whether one of `macs` vouches for the public key `subjectPublicKeyInfo` under
    /// one of this agent's keys.
    public func vouches(for subjectPublicKeyInfo: [UInt8], macs: [[UInt8]]) -> Bool {
        let expected = certificateMACs(subjectPublicKeyInfo: subjectPublicKeyInfo)
        return expected.contains { mine in macs.contains { Self.equal(mine, $0) } }
    }

    /// Counts `replaceSecrets`: what was made under the keys before (a certificate) is
    /// made again.
    public var generation: Int { generations.withLockedValue { $0 } }

    // MARK: Parts

    /// `<time>.<32 hex digits>.<64 hex digits>[.<64 hex digits>…]` (one MAC per key
    /// of the sender, `maxSecrets` at most), read strictly.
    private struct Token {
        var time: String
        var seconds: Int64
        var nonce: String
        var macs: [[UInt8]]

        init?(_ text: String?) {
            guard let text, text.utf8.count <= 12 + 1 + 32 + PeerKey.maxSecrets * 65 else { return nil }
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard (3...(2 + PeerKey.maxSecrets)).contains(parts.count), (1...12).contains(parts[0].utf8.count),
                  parts[0].utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let seconds = Int64(parts[0]), parts[1].utf8.count == 32, HexEncoding.decode(String(parts[1])) != nil
            else { return nil }
            var macs: [[UInt8]] = []
            for part in parts.dropFirst(2) {
                guard let mac = HexEncoding.decode(String(part)), mac.count == SHA256.byteCount else { return nil }
                macs.append(mac)
            }
            self.time = String(parts[0])
            self.seconds = seconds
            self.nonce = String(parts[1]).lowercased()
            self.macs = macs
        }
    }

    private func admit(_ token: Token, now: Int64, fields: [String]) -> Bool {
        admittingKey(token, now: now, fields: fields) != nil
    }

    /// The first of this agent's keys a MAC of `token` matches, when its time is fresh
    /// and its nonce new.
    private func admittingKey(_ token: Token, now: Int64, fields: [String]) -> KeyID? {
        guard abs(token.seconds - now) <= Self.window else { return nil }
        let keys = started.withLockedValue { $0 }
        guard let index = keys.proofs.firstIndex(where: { start in
            let expected = Self.authenticationCode(start, fields).withUnsafeBytes { Array($0) }
            return token.macs.contains { Self.equal(expected, $0) }
        }) else { return nil }
        // Only a valid proof is remembered: a stranger cannot fill the window.
        let fresh = seen.withLockedValue { $0.insert(token.nonce, expires: token.seconds + Self.window, now: now, limit: Self.replayLimit) }
        return fresh ? keys.ids[index] : nil
    }

    /// One MAC per key, `.`-separated.
    private func mac(_ fields: [String]) -> String {
        currentKeys.map { key in Self.authenticationCode(key, fields).withUnsafeBytes { HexEncoding.encode($0) } }.joined(separator: ".")
    }

    /// The MAC of `fields` joined by `\n`, from an HMAC started under a key; the fields
    /// are fed to it as they are, not joined into one message first.
    private static func authenticationCode(_ start: StartedHMAC, _ fields: [String]) -> SHA256.Digest {
        var mac = start
        for (index, field) in fields.enumerated() {
            if index > 0 { withUnsafeBytes(of: UInt8(ascii: "\n")) { mac.update($0) } }
            var field = field
            field.withUTF8 { mac.update(UnsafeRawBufferPointer($0)) }
        }
        return mac.finalize()
    }

    /// 128 random bits, hex: two draws of the system generator (a `getrandom` each).
    /// For probe challenges, one per member every probe interval.
    static func freshNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        let bits = (generator.next(), generator.next())
        return withUnsafeBytes(of: bits) { HexEncoding.encode($0) }
    }

    private static let countedNoncePrefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let countedNonces = Atomic<UInt64>(0)

    /// 128 bits, hex, never the same twice: 64 random bits drawn once per process, then
    /// a count. For forwarding proofs, one per member of every fan-out: what the
    /// receiver needs of their nonce is that it is never repeated (the MAC makes the
    /// proof unforgeable, the replay window refuses a repeat), and random bits per proof
    /// cost the asking agent a `getrandom` per member, 40% of its syscalls at 30 members.
    static func countedNonce() -> String {
        let count = countedNonces.wrappingAdd(1, ordering: .relaxed).oldValue
        return withUnsafeBytes(of: (countedNoncePrefix.bigEndian, count.bigEndian)) { HexEncoding.encode($0) }
    }

    /// Constant time: how many leading bytes match must not show in the timing.
    private static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// HMAC-SHA256 (RFC 2104) under one key, started: the inner and outer hashes have
/// taken the padded key's block, so a MAC copies them and hashes only its message.
///
/// Crypto's `HMAC<SHA256>` is the same composition, but its `update(data:)` is generic
/// and not inlinable: called from this module, every call looked up type metadata at
/// run time, which was most of a forwarding proof's cost (8 to 11% of the asking
/// agent's loops in a 30-member fan-out). This feeds the concrete `SHA256` bytes
/// directly. `PeerTrustTests.macsMatchOpenSSL` checks its MACs against OpenSSL's.
struct StartedHMAC: Sendable {
    private var inner = SHA256()
    private var outer = SHA256()

    /// `key` must not be longer than SHA-256's block (the peer keys are 32 bytes).
    init(key: SymmetricKey) {
        precondition(key.bitCount / 8 <= SHA256.blockByteCount, "a longer key would have to be hashed first")
        var block = [UInt8](repeating: 0, count: SHA256.blockByteCount)
        key.withUnsafeBytes { key in
            for (index, byte) in key.enumerated() { block[index] = byte }
        }
        var padded = block.map { $0 ^ 0x36 }
        padded.withUnsafeBytes { inner.update(bufferPointer: $0) }
        padded = block.map { $0 ^ 0x5C }
        padded.withUnsafeBytes { outer.update(bufferPointer: $0) }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        inner.update(bufferPointer: bytes)
    }

    func finalize() -> SHA256.Digest {
        var outer = outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }
}

/// The nonces of valid proofs still inside the time window, so that each is
/// accepted once. Bounded: past `limit` the oldest is forgotten early (it could then
/// be replayed until its time leaves the window), rather than memory growing
/// with the forwarding rate.
struct ReplayWindow {
    private var nonces: Set<String> = []
    private var order = CircularBuffer<(nonce: String, expires: Int64)>()

    /// False when `nonce` was seen already.
    mutating func insert(_ nonce: String, expires: Int64, now: Int64, limit: Int) -> Bool {
        while let first = order.first, first.expires < now || order.count >= limit {
            nonces.remove(first.nonce)
            order.removeFirst()
        }
        guard nonces.insert(nonce).inserted else { return false }
        order.append((nonce, expires))
        return true
    }
}
