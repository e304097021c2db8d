import Crypto
import FoundationEssentials
import SwiftASN1
import X509

/// The agent's self-signed certificates (its throw-away listener certificate and its
/// peer certificate): P-256, ECDSA-SHA256, valid from an hour ago for five years, for
/// a server, naming `dnsNames`.
public enum SelfSignedCertificate {
    /// The certificate for `key`, DER.
    public static func make(key: P256.Signing.PrivateKey, commonName: String, dnsNames: [String]) throws -> [UInt8] {
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
                SubjectAlternativeNames(dnsNames.map { .dnsName($0) })
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}
