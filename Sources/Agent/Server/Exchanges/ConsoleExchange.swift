import NIOCore
import NIOHTTP1

/// A console websocket being checked: the container or exec instance is looked up
/// with the engine, then a `RelayExchange` asks the engine for the hijacked stream and
/// answers its `101` with the websocket handshake.
final class ConsoleExchange: ConnectionExchange {
    let connection: ConnectionHandler
    private let console: ConsoleRequest

    init(connection: ConnectionHandler, console: ConsoleRequest) {
        self.connection = connection
        self.console = console
    }

    func start() {
        guard let context = connection.context else { return }
        connection.pauseReads()
        let engine = connection.services.engine
        engine.collect(console.inspectHead, on: context.eventLoop, limit: 1 << 20, timeout: .seconds(10)).assumeIsolated().whenComplete { result in
            guard let context = self.connection.context, self.connection.exchange === self else { return }
            switch result {
            case .success(let response) where response.head.status == .ok:
                let (engineHead, body) = self.console.engineRequest(allocator: context.channel.allocator)
                self.connection.start(RelayExchange(
                    connection: self.connection, head: engineHead, pool: engine, console: self.console,
                    parts: [.body(body), .end(nil)], requestEnded: true))
            // A refused upgrade ends the connection: the decoder reads nothing after its head.
            case .success(let response) where response.head.status == .notFound:
                self.connection.fail(AgentError(.notFound, "No such \(self.console.kind == .exec ? "exec instance" : "container"): \(self.console.id)"))
            case .success(let response):
                self.connection.fail(AgentError(.badGateway, "The Docker engine answered \(response.head.status.code)"))
            case .failure(let error):
                self.connection.fail(AgentError(.badGateway, "Unable to reach \(engine.transport.upstreamName)", details: "\(engine.transport): \(error)"))
            }
        }
    }

    // An upgrade request has no body: the decoder reads nothing after its head.
    func receive(_ body: ByteBuffer) {}
    func receiveEnd(_ trailers: HTTPHeaders?) {}
}
