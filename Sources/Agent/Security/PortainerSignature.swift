import ASCIIText
import Crypto
import FoundationEssentials
import Proxy

/// Signs the way Portainer does: ECDSA over `MD5(message)`, `r||s` in unpadded base64.
/// For `deckhand sign`, and for tests that talk to an agent as Portainer does.
package enum PortainerSignature {
    package static func headers(signingWith key: P256.Signing.PrivateKey, secret: String?) -> [(String, String)] {
        let digest = Insecure.MD5.hash(data: Data((secret ?? SignatureVerifier.defaultMessage).utf8))
        let signature = try! key.signature(for: digest)  // signing a digest with a valid key cannot fail
        return [
            (AgentHeaderName.publicKey, HexEncoding.encode(key.publicKey.derRepresentation)),
            (AgentHeaderName.signature, Base64Unpadded.encode(signature.rawRepresentation)),
        ]
    }
}
