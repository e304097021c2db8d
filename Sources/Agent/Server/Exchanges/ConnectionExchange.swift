import NIOCore
import NIOHTTP1
import Proxy

/// One request being served on a connection, of one kind: an agent answer
/// (`AnswerExchange`, aggregated lists included), an upload (`UploadExchange`), a
/// relay to the engine or a peer agent that may turn into a hijack or a console
/// (`RelayExchange`), a console being checked (`ConsoleExchange`), a stream of event
/// lines (`EventStreamExchange`), or a refusal whose body is dropped (`DrainExchange`).
///
/// Each owns its own state. The connection holds at most one, hands it the rest of
/// the request and the channel's events, and hears back through `ConnectionHandler`'s
/// exchange-facing methods (write, pause and resume reads, finish, fail).
protocol ConnectionExchange: AnyObject {
    /// The request's head has been read and the exchange is now the connection's.
    func start()
    /// A part of the request's body.
    func receive(_ body: ByteBuffer)
    /// The request's end.
    func receiveEnd(_ trailers: HTTPHeaders?)
    /// The end of one read from the client.
    func readComplete()
    /// The client started or stopped taking what is written.
    func writabilityChanged(isWritable: Bool)
    /// The client sent its last byte while the exchange was running.
    func inputClosed()
    /// The server is shutting down: an exchange with no end of its own ends now.
    func quiescing()
    /// The connection is gone: release what the exchange holds.
    func connectionClosed()
}

extension ConnectionExchange {
    func readComplete() {}
    func writabilityChanged(isWritable: Bool) {}
    func inputClosed() {}
    func quiescing() {}
    func connectionClosed() {}
}

/// The exchange that carries out a route's plan.
func makeExchange(for plan: RoutePlan, head: HTTPRequestHead, route: Route, connection: ConnectionHandler) -> ConnectionExchange {
    switch plan {
    case .relay:
        return RelayExchange(connection: connection, head: ForwardedHeaders.engineRequest(from: head), pool: connection.services.engine)
    case .forward(let forwarded, let pool, let flushesAtEnd):
        return RelayExchange(connection: connection, head: forwarded, pool: pool ?? connection.services.engine, flushesAtEnd: flushesAtEnd)
    case .answer(let handler, let collectsBody):
        return AnswerExchange(connection: connection, request: AgentRequest(route: route, head: head), handler: handler, collectsBody: collectsBody)
    case .upload(let put):
        if put.volumeName(head) != nil { return VolumeLookupExchange(connection: connection, put: put, head: head) }
        return UploadExchange.make(connection: connection, put: put, head: head, volume: nil)
    case .console(let kind):
        do {
            return ConsoleExchange(connection: connection, console: try ConsoleRequest(kind: kind, head: head))
        } catch {
            return DrainExchange(connection: connection, refusing: error)
        }
    case .stream(let handler):
        guard let eventLoop = connection.context?.eventLoop else { return DrainExchange(connection: connection, refusing: nil) }
        switch handler.open(AgentRequest(route: route, head: head), on: eventLoop) {
        case .success(let source): return EventStreamExchange(connection: connection, source: source)
        case .failure(let error): return DrainExchange(connection: connection, refusing: error)
        }
    case .refuse(let error):
        return DrainExchange(connection: connection, refusing: error)
    }
}

/// A request refused, or failed, before reaching anyone: answered with its error,
/// and the connection ends; the body, if any, is not waited for. Input is still read
/// (and dropped) for a moment, so that the close does not reset the connection under
/// the answer, then the connection closes.
final class DrainExchange: ConnectionExchange {
    let connection: ConnectionHandler
    /// Nil when the connection is already gone (nothing to answer).
    private let error: AgentError?
    private let closingAtOnce: Bool

    init(connection: ConnectionHandler, refusing error: AgentError?, closingAtOnce: Bool = false) {
        self.connection = connection
        self.error = error
        self.closingAtOnce = closingAtOnce
    }

    func start() {
        guard let error else { return }
        connection.closeAfterThisResponse()
        connection.writeResponse(.error(error))
        if closingAtOnce { return connection.context?.close(promise: nil) ?? () }
        if connection.machine.requestEnded { return connection.finishExchange() }
        // A request without a body ends right behind its head; any other is not waited for.
        if connection.machine.requestBodyOpen || connection.machine.isUpgradeRequest { connection.closeAfterLinger() }
    }

    func receive(_ body: ByteBuffer) {
        // Every refusal answers before it drains.
        connection.dropBody(body.readableBytes, answered: true)
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        connection.finishExchange()
    }
}
