import Crypto
import NIOCore
import NIOHTTP1
import Proxy

/// The signature step of one connection: a request to a signed route passes only
/// with a key and signature the verifier accepts. A keep-alive connection repeats the
/// same pair: remembered here, it costs neither the shared cache's lock nor its
/// hashing. Only a pair the verifier accepted is remembered, and only under the
/// secrets it was accepted with: once they are replaced (a rotation that drops a
/// leaked secret), the pair is checked again.
struct SignatureCheck {
    private var verifiedPair: (publicKey: String, signature: String, generation: Int, signs: Insecure.MD5Digest)?

    /// What the last accepted signature signs (which secret): the connection is held
    /// to it until its next signed request (`ConnectionLimit.closeRevoked`).
    var acceptedDigest: Insecure.MD5Digest? { verifiedPair?.signs }

    /// Nil when the request may go on, else the answer that refuses it (the failure is
    /// recorded for the rate-limited log).
    mutating func refusal(
        for head: HTTPRequestHead, verifier: SignatureVerifier, failures: AuthenticationFailureLog, peer: SocketAddress?
    ) -> AgentError? {
        let publicKey = head.headers.first(name: AgentHeaderName.publicKey)
        let signature = head.headers.first(name: AgentHeaderName.signature)
        let generation = verifier.generation
        if let publicKey, let signature, let verifiedPair, publicKey == verifiedPair.publicKey, signature == verifiedPair.signature,
            generation == verifiedPair.generation {
            return nil
        }
        do {
            let signs = try verifier.verify(publicKey: publicKey, signature: signature)
            verifiedPair = (publicKey!, signature!, generation, signs)
            return nil
        } catch {
            failures.record(error, peer: peer)
            switch error {
            case .missingHeaders:
                return .missingSignature
            case .associationClosed:
                return AgentError(
                    .forbidden, "No Portainer associated with this agent within AGENT_SECRET_TIMEOUT",
                    details: "restart the agent, or give it an AGENT_SECRET")
            case .malformedHeaders, .invalidSignature:
                return .invalidSignature
            }
        }
    }
}
