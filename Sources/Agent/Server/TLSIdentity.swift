import Crypto
import NIOSSL
import Proxy

/// The certificate and key the agent serves TLS with: a fresh self-signed P-256
/// certificate at every start (Portainer does not verify it), or an operator's files.
/// In secret mode, peer agents are served a `PeerCertificate` instead.
package struct TLSIdentity {
    var certificateChain: [NIOSSLCertificate]
    var privateKey: NIOSSLPrivateKey

    package static func selfSigned(commonName: String = "deckhand") throws -> TLSIdentity {
        let key = P256.Signing.PrivateKey()
        let certificate = try SelfSignedCertificate.make(key: key, commonName: commonName, dnsNames: [commonName, "localhost"])
        return TLSIdentity(
            certificateChain: [try NIOSSLCertificate(bytes: certificate, format: .der)],
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        )
    }

    package static func load(certificatePath: String, keyPath: String) throws -> TLSIdentity {
        TLSIdentity(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath),
            privateKey: try NIOSSLPrivateKey(file: keyPath, format: .pem)
        )
    }

    /// In secret mode, peers that ask for it are served `peerCertificate` instead.
    func serverContext(peerCertificate: PeerCertificate? = nil) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: TLSConfigurations.server(certificateChain: certificateChain, privateKey: privateKey, peerCertificate: peerCertificate))
    }
}
