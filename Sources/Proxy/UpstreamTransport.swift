import NIOCore
import NIOHTTP1
import NIOPosix

/// Where an upstream lives and how to open a byte stream to it.
///
/// The local engine is a unix socket; a peer agent (cluster mode) will be a TLS
/// connection. Both end in the same HTTP client pipeline, so the relay above them
/// does not care which one it talks to.
public enum UpstreamTransport: Sendable, CustomStringConvertible {
    /// The Docker engine's unix socket, e.g. `/var/run/docker.sock`.
    case unixSocket(path: String)

    public var description: String {
        switch self {
        case .unixSocket(let path): return "unix://\(path)"
        }
    }

    /// Opens a channel on `eventLoop` with the HTTP client handlers and an
    /// `UpstreamHandler` at the end of its pipeline.
    func connect(on eventLoop: EventLoop, connectTimeout: TimeAmount) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            // The hijacked streams need half-close: the engine finishing its output
            // must not tear down stdin that is still flowing the other way.
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try UpstreamHandler.installHTTP(on: channel.pipeline.syncOperations)
                }
            }
        switch self {
        case .unixSocket(let path):
            return bootstrap.connect(unixDomainSocketPath: path)
        }
    }
}
