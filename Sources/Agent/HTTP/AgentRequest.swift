import NIOCore
import NIOHTTP1

/// One request to an agent route: its head and, for routes that take a small
/// JSON body, that body (bounded by `RouteTable.maxBodySize`).
struct AgentRequest {
    var route: Route
    var head: HTTPRequestHead
    var body: ByteBuffer?
    /// The connection's two ends, for the cluster probe's answer.
    var localAddress: SocketAddress?
    var remoteAddress: SocketAddress?
}
