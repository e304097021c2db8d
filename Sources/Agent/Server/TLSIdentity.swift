import Crypto
import FoundationEssentials
import NIOSSL
import Proxy
import SwiftASN1
import X509

/// The certificate and key the agent serves TLS with: a fresh self-signed P-256
/// certificate at every start (Portainer and peer agents do not verify it), or an
/// operator's files.
package struct TLSIdentity {
    var certificateChain: [NIOSSLCertificate]
    var privateKey: NIOSSLPrivateKey

    package static func selfSigned(commonName: String = "deckhand") throws -> TLSIdentity {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(5 * 365 * 24 * 3600),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName(commonName), .dnsName("localhost")])
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return TLSIdentity(
            certificateChain: [try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)],
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        )
    }

    package static func load(certificatePath: String, keyPath: String) throws -> TLSIdentity {
        TLSIdentity(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath),
            privateKey: try NIOSSLPrivateKey(file: keyPath, format: .pem)
        )
    }

    func serverContext() throws -> NIOSSLContext {
        try NIOSSLContext(configuration: TLSConfigurations.server(certificateChain: certificateChain, privateKey: privateKey))
    }
}
