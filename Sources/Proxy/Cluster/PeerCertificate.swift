import ASCIIText
import Crypto
import FoundationEssentials
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

/// What authenticates the TLS channel between agents in secret mode: each agent
/// serves peers a certificate whose public key is vouched for under the shared secret,
/// and checks that of every peer it talks to. Without it, someone who could intercept
/// the agents' traffic (on their overlay network) could end both TLS connections
/// himself, read Portainer's signature headers and change bodies, which the
/// per-request proofs do not cover.
///
/// - The certificate is self-signed for a P-256 key made at start. Its subject
///   alternative names are `serverName` and, for each secret the agent holds, a name
///   `<MAC>.deckhand-peer.invalid`, the MAC being `PeerKey.certificateMACs` of the
///   key's SubjectPublicKeyInfo in base 32 (RFC 4648, lower case, unpadded: 52
///   letters, one DNS label). A name under `.invalid` can never be a real host's.
/// - A peer asks for it by sending `serverName` as SNI; anyone else (Portainer) gets
///   the agent's own certificate, an operator's or the throw-away one, as before.
/// - A peer's certificate passes when one of its names is a MAC of its own public key
///   under one of this agent's keys. The handshake proves the peer holds that key's
///   private half, so a copied certificate does not pass, and one without a secret
///   cannot be made. The chain and its dates are not otherwise looked at: the MAC is
///   the trust.
///
/// When the secrets rotate (`AGENT_SECRET_FILE`), the certificate is made again with
/// the new MACs at the next handshake.
public final class PeerCertificate: Sendable {
    /// What a peer asks for (SNI), and the suffix of the MAC names.
    public static let serverName = "deckhand-peer.invalid"

    private let peerKey: PeerKey
    private let key: P256.Signing.PrivateKey
    private let made: NIOLockedValueBox<(generation: Int, override: NIOSSLContextConfigurationOverride)?>

    public init(peerKey: PeerKey) {
        self.peerKey = peerKey
        key = P256.Signing.PrivateKey()
        made = NIOLockedValueBox(nil)
    }

    /// The certificate and key a handshake that asked for `serverName` is served with.
    public func override() throws -> NIOSSLContextConfigurationOverride {
        let generation = peerKey.generation
        if let made = made.withLockedValue({ $0 }), made.generation == generation { return made.override }
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = [.certificate(try NIOSSLCertificate(bytes: try certificate(), format: .der))]
        override.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        made.withLockedValue { $0 = (generation, override) }
        return override
    }

    /// The certificate, DER, with the MACs of the current keys.
    func certificate() throws -> [UInt8] {
        let macs = peerKey.certificateMACs(subjectPublicKeyInfo: Array(key.publicKey.derRepresentation))
        return try SelfSignedCertificate.make(
            key: key, commonName: "deckhand peer", dnsNames: [Self.serverName] + macs.map { Base32Encoding.encode($0) + "." + Self.serverName })
    }

    /// Whether a peer's chain (leaf first, as the handshake gave it) is an agent's
    /// that holds one of `peerKey`'s secrets.
    public static func verify(_ chain: [NIOSSLCertificate], by peerKey: PeerKey) -> NIOSSLVerificationResult {
        guard let leaf = chain.first,
              let der = try? leaf.toDERBytes(),
              let certificate = try? Certificate(derEncoded: der),
              let publicKey = try? leaf.extractPublicKey().toSPKIBytes(),
              let names = try? certificate.extensions.subjectAlternativeNames
        else { return .failed }
        var macs: [[UInt8]] = []
        for name in names {
            guard case .dnsName(let dnsName) = name, dnsName.hasSuffix("." + serverName) else { continue }
            guard let mac = Base32Encoding.decode(String(dnsName.dropLast(serverName.utf8.count + 1))), mac.count == SHA256.byteCount else { continue }
            macs.append(mac)
            if macs.count == PeerKey.maxSecrets { break }
        }
        return peerKey.vouches(for: publicKey, macs: macs) ? .certificateVerified : .failed
    }

    /// Whether `error` (a connection's) is a handshake that `verify` refused: BoringSSL
    /// reports it with this reason, and NIOSSL passes no other sign of it.
    public static func isRefusal(_ error: any Error) -> Bool {
        error is NIOSSLError && "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
    }
}
