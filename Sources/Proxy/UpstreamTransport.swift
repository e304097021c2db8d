import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where an upstream lives and how to open a byte stream to it.
///
/// The local engine is a unix socket or a TCP port (with TLS or without); a peer
/// agent (cluster mode) is a TLS connection. Both end in the same HTTP client pipeline, so the relay above them
/// does not care which one it talks to.
public enum UpstreamTransport: Sendable, CustomStringConvertible {
    /// The Docker engine's unix socket, e.g. `/var/run/docker.sock`.
    case unixSocket(path: String)
    /// The Docker engine's TCP port (`tcp://host:port`), with TLS when `context` is
    /// given (`TLSConfigurations.engineClient`).
    case engineTCP(host: String, port: Int, context: NIOSSLContext?)
    /// A peer agent's HTTPS port. Without a secret, peers use throw-away self-signed
    /// certificates that the context does not verify (callers are authenticated per
    /// request); in secret mode (`vouchedBy`), the peer's certificate must be vouched
    /// for under one of the secrets (`PeerCertificate`), asked for by its SNI name, and
    /// the context must be `peerTLSContext(proven: true)`.
    case tls(host: String, port: Int, context: NIOSSLContext, vouchedBy: PeerKey? = nil)
    /// A public HTTPS service (Docker Hub): the context verifies the certificate, and
    /// the host name is sent (SNI) and checked against it.
    case verifiedTLS(host: String, port: Int, context: NIOSSLContext)

    public var description: String {
        switch self {
        case .unixSocket(let path): return "unix://\(path)"
        case .engineTCP(let host, let port, _): return EngineAddress.tcp(host: host, port: port).description
        case .tls(let host, let port, _, _), .verifiedTLS(let host, let port, _): return "https://\(HostPort.join(host, port))"
        }
    }

    /// What the upstream is, as an error that could not reach it names it.
    public var upstreamName: String {
        switch self {
        case .unixSocket, .engineTCP: return "the Docker engine"
        case .tls(let host, let port, _, _): return "the agent at \(HostPort.join(host, port))"
        case .verifiedTLS(let host, let port, _): return "https://\(HostPort.join(host, port))"
        }
    }

    /// The kind of upstream, as a metric label: a bounded set, never an address.
    public var metricsLabel: String {
        switch self {
        case .unixSocket, .engineTCP: return "engine"
        case .tls: return "peer"
        case .verifiedTLS: return "registry"
        }
    }

    /// A client context for talking to peer agents (`TLSConfigurations.peerClient`).
    public static func peerTLSContext(proven: Bool = false) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: TLSConfigurations.peerClient(proven: proven))
    }

    /// The engine at `address`, over TLS made from `tls` when it is a TCP address and
    /// `tls` is given. Throws what is wrong with the files (unreadable, a key that is
    /// not the certificate's).
    public static func engine(_ address: EngineAddress, tls: EngineTLS?) throws(EngineTLSError) -> UpstreamTransport {
        switch address {
        case .unixSocket(let path):
            return .unixSocket(path: path)
        case .tcp(let host, _):
            let port = address.port(tls: tls != nil) ?? 2375
            guard let tls else { return .engineTCP(host: host, port: port, context: nil) }
            let configuration = try TLSConfigurations.engineClient(tls)
            do {
                return .engineTCP(host: host, port: port, context: try NIOSSLContext(configuration: configuration))
            } catch {
                // The files read; what BoringSSL refuses now is the pair: a key that
                // is not the certificate's.
                if let (certificate, key) = tls.clientCertificate {
                    throw EngineTLSError(.keyDoesNotMatch(certificate: certificate, key: key))
                }
                throw EngineTLSError(.handshakeFailed(engine: address.description, reason: "\(error)"))
            }
        }
    }

    /// Opens a channel on `eventLoop` with the HTTP client handlers and an
    /// `UpstreamHandler` at the end of its pipeline.
    func connect(on eventLoop: EventLoop, connectTimeout: TimeAmount) -> EventLoopFuture<Channel> {
        // A loop that cannot carry sockets (an embedded one, in exchange tests) fails
        // the connection like an unreachable upstream rather than trapping.
        guard let bootstrap = ClientBootstrap(validatingGroup: eventLoop) else {
            return eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        return connect(bootstrap, connectTimeout: connectTimeout)
    }

    private func connect(_ bootstrap: ClientBootstrap, connectTimeout: TimeAmount) -> EventLoopFuture<Channel> {
        let bootstrap = bootstrap
            .connectTimeout(connectTimeout)
            // The hijacked streams need half-close: the engine finishing its output
            // must not tear down stdin that is still flowing the other way.
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    switch self {
                    case .tls(_, _, let context, nil):
                        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    case .tls(_, _, let context, let peerKey?):
                        // With no verification in the context the callback would never run:
                        // such a connection fails rather than go unchecked.
                        guard context.configuration.certificateVerification != .none else { throw ChannelError.operationUnsupported }
                        try pipeline.addHandler(NIOSSLClientHandler(
                            context: context, serverHostname: PeerCertificate.serverName,
                            customVerificationCallback: { chain, promise in promise.succeed(PeerCertificate.verify(chain, by: peerKey)) }))
                    case .verifiedTLS(let host, _, let context), .engineTCP(let host, _, let context?):
                        // An IP address is checked against the certificate, never sent as SNI.
                        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
                    case .unixSocket, .engineTCP(_, _, nil):
                        break
                    }
                    try UpstreamHandler.installHTTP(on: pipeline)
                }
            }
        switch self {
        case .unixSocket(let path):
            return bootstrap.connect(unixDomainSocketPath: path)
        case .tls(let host, let port, _, _), .verifiedTLS(let host, let port, _), .engineTCP(let host, let port, _):
            return bootstrap.connect(host: host, port: port)
        }
    }
}
