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

    /// The certificate chain and key in these PEM files (regular files of at most
    /// `TLSConfigurations.pemFileLimit`), checked to be a pair: a key that is not the certificate's is
    /// said so here, at start, not found when the listener is made.
    package static func load(certificatePath: String, keyPath: String) throws -> TLSIdentity {
        func contents(_ path: String) throws -> [UInt8] {
            do {
                return try ConfigurationFile.read(path, limit: TLSConfigurations.pemFileLimit)
            } catch {
                throw TLSIdentityError(path: path, problem: "expected \(error)")
            }
        }
        let identity = TLSIdentity(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(try contents(certificatePath)),
            privateKey: try NIOSSLPrivateKey(bytes: try contents(keyPath), format: .pem)
        )
        do {
            _ = try identity.serverContext()
        } catch {
            throw TLSIdentityError(path: keyPath, problem: "the key of the certificate in \(certificatePath) (\(error))")
        }
        return identity
    }


    /// In secret mode, peers that ask for it are served `peerCertificate` instead.
    func serverContext(peerCertificate: PeerCertificate? = nil) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: TLSConfigurations.server(certificateChain: certificateChain, privateKey: privateKey, peerCertificate: peerCertificate))
    }
}

/// A TLS file that cannot be used, and why.
struct TLSIdentityError: Error, CustomStringConvertible {
    var path: String
    var problem: String
    var description: String { "\(path): \(problem)" }
}
