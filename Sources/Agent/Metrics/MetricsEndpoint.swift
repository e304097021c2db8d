import NIOCore
import NIOHTTP1
import NIOPosix

/// The plain-HTTP listener of `DECKHAND_METRICS_ADDR`: `GET /metrics` (`HEAD` too)
/// answers the text exposition format, anything else a JSON 404 (405 for another
/// method). It has no signature and no TLS, which is why it never shares the
/// agent's port.
final class MetricsEndpoint: Sendable {
    private let listener: Channel

    /// The port actually bound (useful when configured with port 0).
    var port: Int { listener.localAddress?.port ?? 0 }

    private init(listener: Channel) {
        self.listener = listener
    }

    static func start(at address: ListenAddress, metrics: AgentMetrics, group: EventLoopGroup) async throws -> MetricsEndpoint {
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(MetricsRequestHandler(metrics: metrics))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        return MetricsEndpoint(listener: listener)
    }

    func stop() async {
        try? await listener.close()
    }
}

/// One scrape connection: answers each request once its end has arrived.
private final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: AgentMetrics
    private var head: HTTPRequestHead?

    init(metrics: AgentMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let response: AgentResponse
        if path != "/metrics" {
            response = .error(AgentError(.notFound, "Not found", details: "this listener serves GET /metrics only"))
        } else if head.method != .GET, head.method != .HEAD {
            var refusal = AgentResponse.error(AgentError(.methodNotAllowed, "Method not allowed", details: "GET /metrics"))
            refusal.headers.add(name: "Allow", value: "GET, HEAD")
            response = refusal
        } else {
            response = AgentResponse(
                status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.exposition())
        }
        var responseHead = response.head(closing: !head.isKeepAlive)
        responseHead.version = head.version
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD, let body = response.bodyBuffer {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
