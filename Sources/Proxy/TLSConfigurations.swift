import NIOCore
import NIOSSL

/// The one place the agent's TLS settings are made: its listener, its client to peer
/// agents and its client to public HTTPS services. Every kind shares the floor (TLS 1.2) and the short shutdown timeout.
public enum TLSConfigurations {
    /// How long a connection we close waits for the other side's close_notify. With
    /// remote half-closure allowed (hijacked streams need it), NIOSSL waits out this
    /// whole timeout even when the peer answered or hung up, which held a stopping
    /// agent's drain (and its exit) for the default 5 s whenever a peer agent had a
    /// pooled keep-alive connection to it. A peer that never answers (a stalled or
    /// hostile client) would hold its descriptor as long.
    static let shutdownTimeout = TimeAmount.milliseconds(250)

    /// The agent's HTTPS listener, serving `certificateChain` with `privateKey`.
    public static func server(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        configuration.shutdownTimeout = shutdownTimeout
        return configuration
    }

    /// A client of peer agents: their certificates are throw-away self-signed ones,
    /// so none is checked; callers are authenticated per request.
    public static func peerClient() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        configuration.shutdownTimeout = shutdownTimeout
        return configuration
    }

    /// A client of a public HTTPS service (Docker Hub): the certificate is checked
    /// against `trustRootsFile` (PEM), or the system's trust roots when nil.
    public static func verifiedClient(trustRootsFile: String?) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustRootsFile { configuration.trustRoots = .file(trustRootsFile) }
        return configuration
    }
}
