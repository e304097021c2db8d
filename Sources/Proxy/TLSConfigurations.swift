import NIOCore
import NIOSSL

/// The one place the agent's TLS settings are made: its listener, its client to peer
/// agents, its client to public HTTPS services, and its client to a Docker engine
/// over TCP. Every kind shares the floor (TLS 1.2) and the short shutdown timeout.
public enum TLSConfigurations {
    /// How long a connection we close waits for the other side's close_notify. With
    /// remote half-closure allowed (hijacked streams need it), NIOSSL waits out this
    /// whole timeout even when the peer answered or hung up, which held a stopping
    /// agent's drain (and its exit) for the default 5 s whenever a peer agent had a
    /// pooled keep-alive connection to it. A peer that never answers (a stalled or
    /// hostile client) would hold its descriptor as long.
    static let shutdownTimeout = TimeAmount.milliseconds(250)

    /// The agent's HTTPS listener, serving `certificateChain` with `privateKey`; in
    /// secret mode, a handshake that asks for `PeerCertificate.serverName` (a peer
    /// agent's) is served `peerCertificate` instead.
    public static func server(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, peerCertificate: PeerCertificate? = nil) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey)
        )
        if let peerCertificate {
            configuration.sslContextCallback = { hello, promise in
                guard hello.serverHostname == PeerCertificate.serverName else { return promise.succeed(.noChanges) }
                promise.completeWith(Result { try peerCertificate.override() })
            }
        }
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        configuration.shutdownTimeout = shutdownTimeout
        return configuration
    }

    /// A client of peer agents. In secret mode (`proven`), their certificates are
    /// checked by `PeerCertificate.verify`, which the connection installs (the mode
    /// here only lets a verification callback run). Without a secret there is nothing
    /// to check them against: callers are authenticated per request.
    public static func peerClient(proven: Bool = false) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = proven ? .noHostnameVerification : .none
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        configuration.shutdownTimeout = shutdownTimeout
        return configuration
    }

    /// A client of a public HTTPS service (Docker Hub): the certificate is checked
    /// against `trustRootsFile` (PEM, read as any configuration file: a FIFO there
    /// must not block start-up), or the system's trust roots when nil. Throws when the
    /// file cannot be read or holds no certificate.
    public static func verifiedClient(trustRootsFile: String?) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustRootsFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(try ConfigurationFile.read(trustRootsFile, limit: pemFileLimit)))
            } catch let problem as ConfigurationFile.Problem {
                throw TrustRootsError(description: "expected \(problem)")
            }
        }
        return configuration
    }

    /// Trust roots that cannot be used, and why.
    public struct TrustRootsError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The most a PEM file of certificates or a key may hold.
    public static let pemFileLimit = 1 << 20

    /// A client of a Docker engine's TLS port, as the docker CLI makes it from
    /// `DOCKER_CERT_PATH`: trust roots from `ca.pem` (the system's without one), the
    /// client certificate `cert.pem` with `key.pem` when there is one, and the
    /// engine's certificate checked only with `DOCKER_TLS_VERIFY`.
    public static func engineClient(_ tls: EngineTLS) throws(EngineTLSError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.shutdownTimeout = shutdownTimeout
        configuration.certificateVerification = tls.verify ? .fullVerification : .none
        // Read as any configuration file (a FIFO or a device named by mistake would
        // block start-up for good, or be read without end), then parsed.
        if let ca = tls.caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(try ConfigurationFile.read(ca, limit: pemFileLimit)))
            } catch {
                throw EngineTLSError(.unreadableCA(ca, "\(error)"))
            }
        }
        if let (certificate, key) = tls.clientCertificate {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(try ConfigurationFile.read(certificate, limit: pemFileLimit))
                    .map { .certificate($0) }
            } catch {
                throw EngineTLSError(.unreadableCertificate(certificate, "\(error)"))
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: try ConfigurationFile.read(key, limit: pemFileLimit), format: .pem))
            } catch {
                throw EngineTLSError(.unreadableKey(key, "\(error)"))
            }
        }
        return configuration
    }
}
