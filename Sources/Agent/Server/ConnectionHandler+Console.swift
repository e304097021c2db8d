import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

// Console websockets: checked with the engine, then bridged after its 101.
extension ConnectionHandler {
    /// Checks the id with the engine, then asks it for a hijacked stream; the engine's
    /// 101 is answered with the websocket handshake (`bridgeConsole`).
    func startConsole(head: HTTPRequestHead, kind: ConsoleKind, context: ChannelHandlerContext) {
        let console: ConsoleRequest
        do {
            console = try ConsoleRequest(kind: kind, head: head)
        } catch {
            return refuse(error, context: context)
        }
        state = .console
        readsPaused = true
        let engine = services.engine
        engine.collect(console.inspectHead, on: context.eventLoop, limit: 1 << 20, timeout: .seconds(10)).assumeIsolated().whenComplete { result in
            guard let context = self.context, case .console = self.state else { return }
            switch result {
            case .success(let response) where response.head.status == .ok:
                let (engineHead, body) = console.engineRequest(allocator: context.channel.allocator)
                self.pendingConsole = console
                self.startRelay(head: engineHead, pool: engine, context: context, parts: [.body(body), .end(nil)], ended: true)
            // A refused upgrade ends the connection: the decoder reads nothing after its head.
            case .success(let response) where response.head.status == .notFound:
                self.failed(AgentError(.notFound, "No such \(kind == .exec ? "exec instance" : "container"): \(console.id)"), context: context)
            case .success(let response):
                self.failed(AgentError(.badGateway, "The Docker engine answered \(response.head.status.code)"), context: context)
            case .failure(let error):
                self.failed(AgentError(.badGateway, "Unable to reach the Docker engine", details: "\(error)"), context: context)
            }
        }
    }

    /// The engine hijacked its side: finish the browser's websocket handshake and
    /// swap both pipelines for the console bridge.
    func bridgeConsole(_ console: ConsoleRequest, exchange: Exchange, context: ChannelHandlerContext) {
        state = .upgraded
        exchange.upstream.delegate = nil
        context.write(wrapOutboundOut(.head(console.upgradeResponse)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let (browserSide, engineSide) = ConsoleBridge.makePair()
        leaveHTTP(
            exchange,
            clientHandlers: [WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)), browserSide],
            engineHandler: engineSide, context: context)
    }
}
