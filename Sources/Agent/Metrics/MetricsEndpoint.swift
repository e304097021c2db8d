import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The plain-HTTP listener of `DECKHAND_METRICS_ADDR`: `GET /metrics` (`HEAD` too)
/// answers the text exposition format, anything else a JSON 404 (405 for another
/// method). It has no signature and no TLS, which is why it never shares the
/// agent's port.
///
/// Whoever can reach it is unauthenticated, so what one can hold is small: every
/// answer ends its connection (a scrape is one request; pipelined requests cannot
/// each queue an exposition), a connection silent for `idleTimeout` is closed, as is
/// one still open `lifetime` after it came (a client trickling a byte at a time is
/// never silent), and past `maximumConnections` open at once, or `maximumPerAddress`
/// from one address, a new one is closed on arrival: one host cannot take every slot.
final class MetricsEndpoint: Sendable {
    static let idleTimeout = TimeAmount.seconds(10)
    static let lifetime = TimeAmount.seconds(20)
    static let maximumConnections = 64
    static let maximumPerAddress = 8

    private let listener: Channel

    /// The port actually bound (useful when configured with port 0).
    var port: Int { listener.localAddress?.port ?? 0 }

    private init(listener: Channel) {
        self.listener = listener
    }

    static func start(at address: ListenAddress, metrics: AgentMetrics, group: EventLoopGroup) async throws -> MetricsEndpoint {
        // Connections open now, by the client's address (without its port).
        let open = Mutex<[String: Int]>([:])
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let address = channel.remoteAddress?.ipAddress ?? ""
                let admitted = open.withLock { open in
                    guard open.values.reduce(0, +) < maximumConnections, open[address, default: 0] < maximumPerAddress else { return false }
                    open[address, default: 0] += 1
                    return true
                }
                guard admitted else { return channel.close() }
                let ending = channel.eventLoop.scheduleTask(in: lifetime) { channel.close(promise: nil) }
                channel.closeFuture.whenComplete { _ in
                    ending.cancel()
                    open.withLock { open in
                        open[address, default: 1] -= 1
                        if open[address] == 0 { open[address] = nil }
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: idleTimeout))
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

/// One scrape connection: answers its request once its end has arrived, then ends its output.
private final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: AgentMetrics
    private var head: HTTPRequestHead?
    /// The connection's one answer is written: what else was sent is not answered.
    private var answered = false

    init(metrics: AgentMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head, !answered else { return }
            self.head = nil
            answered = true
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
        var responseHead = response.head(closing: true)
        responseHead.version = head.version
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD, let body = response.bodyBuffer {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        // Output ends after the answer; the rest closes when the client does, or at the
        // idle timeout. A full close with requests still unread would reset the
        // connection and could lose the answer on its way.
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Silent for the idle timeout: a scraper would have asked long ago.
        if event is IdleStateHandler.IdleStateEvent { return context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}
