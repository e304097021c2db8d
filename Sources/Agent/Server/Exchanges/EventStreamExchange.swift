import NIOCore
import NIOHTTP1

/// Where an event stream's lines come from: this node's hardware events
/// (`LocalHostEvents`), or every node's (`FleetHostEvents`). Used on the connection's
/// event loop only.
protocol EventLineSource: AnyObject {
    /// Begins; `wake` is called (on the loop) whenever lines may be waiting.
    func start(wake: @escaping () -> Void)
    /// Appends the lines waiting now (each one JSON object and a newline) to `buffer`;
    /// true when the stream ends after them (e.g. after an `overflow` line).
    func take(into buffer: inout ByteBuffer) -> Bool
    /// Events were lost: the stream must end even though the client is not reading.
    var hasOverflowed: Bool { get }
    /// The client is gone or the stream ended: release everything (subscription, peers).
    func stop()
}

/// A route that answers with a stream of lines.
protocol EventStreamHandler: Sendable {
    /// The stream's source for this request, or the error to answer instead (before any
    /// byte of the stream is written).
    func open(_ request: AgentRequest, on eventLoop: EventLoop) -> Result<EventLineSource, AgentError>
}

/// A `200` whose body is newline-delimited JSON, one object per line, for as long as
/// the client stays (`GET /v2/host/events`, `/v2/cluster/host/events`). Chunked, flushed
/// line by line as events come. Lines are taken from the source only while the client
/// reads (the channel is writable), so a client that stops reading holds the source's
/// bounded queue and the channel's write buffer, nothing more. The source is released
/// when the connection closes, when the client half-closes, when the agent shuts down,
/// or when the source ends the stream; the connection then closes, as the stream has
/// no other end.
final class EventStreamExchange: ConnectionExchange {
    static let contentType = "application/x-ndjson"

    let connection: ConnectionHandler
    private let source: EventLineSource
    private var stopped = false

    init(connection: ConnectionHandler, source: EventLineSource) {
        self.connection = connection
        self.source = source
    }

    func start() {
        connection.closeAfterThisResponse()
        var headers: HTTPHeaders = ["Content-Type": Self.contentType, "Cache-Control": "no-store", "Transfer-Encoding": "chunked"]
        AgentHeaders.add(to: &headers)
        headers.add(name: "Connection", value: "close")
        connection.write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)), flush: true)
        if connection.machine.isHeadRequest { return end() }
        source.start { [weak self] in self?.drain() }
        drain()
    }

    func receive(_ body: ByteBuffer) {
        connection.dropBody(body.readableBytes, answered: true)
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {}

    func writabilityChanged(isWritable: Bool) {
        if isWritable { drain() }
    }

    /// A shutting-down agent ends its streams (cleanly: the client sees the last chunk).
    func quiescing() {
        end()
    }

    /// A client that half-closes is done listening.
    func inputClosed() {
        end()
    }

    func connectionClosed() {
        stop()
    }

    /// Writes what is waiting, while the client takes it; once the source overflowed,
    /// its last lines go out whatever the client does, and the stream ends.
    private func drain() {
        guard !stopped, let context = connection.context, context.channel.isWritable || source.hasOverflowed else { return }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        let ended = source.take(into: &buffer)
        if buffer.readableBytes > 0 { connection.write(.body(.byteBuffer(buffer)), flush: true) }
        if ended { end() }
    }

    private func end() {
        guard !stopped else { return }
        stop()
        connection.write(.end(nil), flush: true)
        connection.context?.close(promise: nil)
    }

    private func stop() {
        guard !stopped else { return }
        stopped = true
        source.stop()
        connection.services.logger.debug("host event stream closed", metadata: ["subscribers": "\(connection.services.routes.hardwareEvents?.subscriberCount ?? 0)"])
    }
}
