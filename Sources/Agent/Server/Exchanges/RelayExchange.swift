import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

/// An idle engine or peer connection kept from a client's previous relay for its next:
/// keep-alive clients mostly send the next request soon, and keeping it saves a pool
/// round trip. It goes back to the pool when the client's connection ends.
struct KeptUpstream {
    let pool: UpstreamPool
    let channel: Channel

    func release() {
        pool.release(channel, reusable: true)
    }
}

/// A request relayed to an upstream (the local engine or a peer agent), streaming
/// both ways with back-pressure. A `101` from upstream turns the connection into a
/// raw two-way relay (a hijack), or, for a console, into a websocket bridge.
final class RelayExchange: ConnectionExchange, UpstreamDelegate {
    enum Phase {
        /// Waiting for an upstream connection; request parts are held meanwhile
        /// (reads are paused, so at most one read's worth).
        case connecting(held: [HTTPServerRequestPart])
        case relaying(UpstreamHandler, Channel)
        /// The HTTP handlers are gone; the relay or bridge runs on its own.
        case upgraded
    }

    let connection: ConnectionHandler
    private let head: HTTPRequestHead
    private let pool: UpstreamPool
    /// Set for a console: its 101 becomes a websocket, not a raw relay.
    private let console: ConsoleRequest?
    /// The client reads the whole response before using any of it (a member's part
    /// of another agent's aggregated list): flushed once, at its end, rather than
    /// once per upstream read.
    private let flushesAtEnd: Bool
    private var phase: Phase
    private var requestEnded: Bool
    private var responseStarted = false
    private var responseEnded = false
    /// The response ended before the request did.
    private var answeredEarly = false
    /// The upstream closed after answering early: the request's body is dropped.
    private var upstreamGone = false
    /// The upstream's 101, held until its `.end` has passed the HTTP decoder.
    private var upgrade: HTTPResponseHead?
    /// A raw response's head (and as much of its body as fits), written at the end of
    /// the upstream's read: a small answer goes out in one write.
    private var rawOut: ByteBuffer?

    init(
        connection: ConnectionHandler, head: HTTPRequestHead, pool: UpstreamPool, console: ConsoleRequest? = nil,
        parts: [HTTPServerRequestPart] = [], requestEnded: Bool = false, flushesAtEnd: Bool = false
    ) {
        self.connection = connection
        self.head = head
        self.pool = pool
        self.console = console
        self.phase = .connecting(held: parts)
        self.requestEnded = requestEnded
        self.flushesAtEnd = flushesAtEnd
    }

    func start() {
        guard let context = connection.context else { return }
        connection.pauseReads()
        if let kept = connection.keptUpstream {
            connection.keptUpstream = nil
            // A peer connection checked under secrets since replaced is not used again.
            if kept.pool === pool, kept.channel.isActive, pool.isCurrent(kept.channel) { return acquired(.success(kept.channel)) }
            kept.release()
        }
        pool.acquire(on: context.eventLoop).assumeIsolated().whenComplete { result in
            self.acquired(result)
        }
    }

    private func acquired(_ result: Result<Channel, Error>) {
        guard connection.context != nil, connection.exchange === self, case .connecting(let held) = phase else {
            // The client went away while we were connecting.
            if case .success(let channel) = result { pool.release(channel, reusable: true) }
            return
        }
        let channel: Channel
        let upstream: UpstreamHandler
        do {
            channel = try result.get()
            upstream = try UpstreamHandler.of(channel)
        } catch {
            connection.services.logger.warning("upstream unreachable", metadata: ["upstream": "\(pool.transport)", "error": "\(error)"])
            return connection.fail(AgentError(.badGateway, "Unable to reach \(pool.transport.upstreamName)", details: "\(pool.transport): \(error)"))
        }
        phase = .relaying(upstream, channel)
        // The engine's plainly framed answers go on in the bytes it wrote (see
        // `upstreamDidReceive(raw:)`); a peer's, or one for an HTTP/1.0 client, decoded.
        let raw = pool === connection.services.engine && head.version == .http1_1 && connection.writesRaw
        upstream.begin(delegate: self, rawResponses: raw ? .plain : .never)
        upstream.write(.head(head))
        for part in held {
            switch part {
            case .body(let body): upstream.write(.body(.byteBuffer(body)))
            case .end(let trailers): upstream.write(.end(trailers))
            case .head: break
            }
        }
        upstream.flush()
        if upstream.isWritable { connection.resumeReads() }
    }

    // MARK: The request

    func receive(_ body: ByteBuffer) {
        // Past the end of the request the upstream was sent (a console's, which the
        // agent framed itself), the client's bytes are no part of it: never passed on.
        guard !requestEnded else { return connection.dropBody(body.readableBytes, answered: false) }
        switch phase {
        case .connecting(var held):
            held.append(.body(body))
            phase = .connecting(held: held)
        case .relaying(let upstream, _):
            // The upstream answered early and hung up: the rest of the body can go nowhere.
            guard !upstreamGone else { return connection.dropBody(body.readableBytes, answered: true) }
            upstream.write(.body(.byteBuffer(body)))
            if !upstream.isWritable { connection.pauseReads() }
        case .upgraded:
            break
        }
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        requestEnded = true
        switch phase {
        case .connecting(var held):
            held.append(.end(trailers))
            phase = .connecting(held: held)
        case .relaying(let upstream, _):
            upstream.write(.end(trailers))
            upstream.flush()
            if responseEnded { finish() }
        case .upgraded:
            break
        }
    }

    func readComplete() {
        if case .relaying(let upstream, _) = phase { upstream.flush() }
    }

    func writabilityChanged(isWritable: Bool) {
        guard case .relaying(let upstream, _) = phase else { return }
        if isWritable { upstream.resumeReading() } else { upstream.pauseReading() }
    }

    func inputClosed() {
        // The request was cut off: the upstream can never see its end.
        guard case .relaying(let upstream, _) = phase, !requestEnded else { return }
        upstream.close()
        connection.context?.close(promise: nil)
    }

    func connectionClosed() {
        guard case .relaying(let upstream, _) = phase else { return }
        upstream.delegate = nil
        upstream.close()
    }

    /// Both messages ended: the upstream is kept for this client's next request when
    /// both ended cleanly, the request first (an upstream that answered before the
    /// request's end may not have read the rest as a body).
    private func finish() {
        guard case .relaying(let upstream, let channel) = phase else { return }
        upstream.delegate = nil
        if upstream.isReusable && !answeredEarly {
            connection.keptUpstream = .init(pool: pool, channel: channel)
        } else {
            channel.close(promise: nil)
        }
        connection.finishExchange()
    }

    // MARK: The response

    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        guard connection.context != nil, connection.exchange === self, case .relaying(let upstream, _) = phase else { return }
        switch part {
        case .head(var head):
            // The status line goes on as the upstream wrote it (`101 UPGRADED`).
            head.status = upstream.receivedStatus ?? head.status
            // llhttp reads 000–099 as statuses, which no upstream may send; and a 101
            // answers only a request that asked to upgrade (else the client's next
            // request would go to the upstream raw).
            if head.status.code < 100 || (head.status.code == 101 && !connection.machine.isUpgradeRequest) {
                upstream.delegate = nil
                upstream.close()
                return connection.fail(AgentError(.badGateway, "The upstream answered with a status it may not send", details: "\(head.status.code)"))
            }
            if head.status.code == 101 {
                // The decoder still has this response's `.end` to deliver; switch to
                // raw bytes only after it, or it would reach the raw relay.
                upgrade = head
                return
            }
            if head.status.code >= 200 {
                // An answer before the request's end is the connection's last (see `finishOrFinishRequest`).
                if !requestEnded { connection.closeAfterThisResponse() }
                // The client decodes what the upstream framed only if it is framed the
                // one way both sides read alike; anything else is the upstream's fault.
                let relayed: MessageFraming.Relayed
                switch MessageFraming.responseBody(of: head) {
                case .failure(let problem):
                    upstream.delegate = nil
                    upstream.close()
                    return connection.fail(AgentError(.badGateway, "The upstream framed its answer ambiguously", details: problem.description))
                case .success(let body):
                    relayed = MessageFraming.relayed(head, body: body, method: self.head.method, clientVersion: self.head.version)
                }
                head = relayed.head
                responseStarted = true
                AgentHeaders.add(to: &head.headers)
                if relayed.endsWithConnection || !MessageFraming.keepsAlive(head.headers, version: head.version) {
                    connection.closeAfterThisResponse()
                }
                // A connection that ends after this answer says so: a client must never
                // find a kept-alive connection closed under its next request.
                if connection.machine.closeAfterResponse { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            }
            connection.write(.head(head), flush: head.status.code < 200)
        case .body(let body):
            connection.write(.body(.byteBuffer(body)))
            pauseIfClientIsFull(upstream)
        case .end(let trailers):
            if let upgrade {
                // The upstream switched before the request's body ended (an exec start
                // whose JSON the engine read ahead of a longer Content-Length): what
                // follows cannot be both the body and the raw stream, and the decoder
                // would hand body parts to the raw relay.
                guard requestEnded else {
                    upstream.delegate = nil
                    upstream.close()
                    return connection.fail(AgentError(
                        .badGateway, "The upstream switched protocols before the request's body ended",
                        details: "an upgrade request's body must end before the upstream answers"))
                }
                return hijack(upstream, head: upgrade)
            }
            responseEnded = true
            connection.write(.end(trailers), flush: true)
            finishOrFinishRequest()
        }
    }

    /// The client cannot take more for now: what is written goes out, and the upstream
    /// is not read until the client drains (`writabilityChanged`).
    private func pauseIfClientIsFull(_ upstream: UpstreamHandler) {
        guard let context = connection.context, !context.channel.isWritable else { return }
        context.flush()
        upstream.pauseReading()
    }

    /// The response is written whole: the exchange ends, or goes on passing the request's body.
    private func finishOrFinishRequest() {
        if requestEnded {
            finish()
        } else {
            // The upstream answered before the request body ended: keep passing the
            // body on, but neither this upstream nor the client connection is reused.
            answeredEarly = true
            connection.closeAfterThisResponse()
        }
    }

    /// A response passed on in bytes: the upstream's head as it came, with the agent's
    /// fields (and `Connection: close` when this connection ends after it) added before
    /// its blank line. Such a head is HTTP/1.1, framed by its length or as `chunked` in
    /// the one spelling, and has no `Connection` field (`ResponseHeadScan.Facts.plainBody`),
    /// so it needs none of the rewriting `MessageFraming.relayed` does to a decoded one.
    func upstreamDidReceive(raw part: RawResponsePart) {
        guard let context = connection.context, connection.exchange === self, case .relaying(let upstream, _) = phase else { return }
        switch part {
        case .head(let head):
            responseStarted = true
            connection.answering(statusCode: head.statusCode)
            // An answer before the request's end is the connection's last (see `finishOrFinishRequest`).
            if !requestEnded { connection.closeAfterThisResponse() }
            let closing = connection.machine.closeAfterResponse
            let fields = head.bytes.readableBytes - 2
            var out = context.channel.allocator.buffer(
                capacity: fields + AgentHeaders.lines.count + (closing ? 19 : 0) + 2 + Self.bodyRoom(head.body))
            out.writeImmutableBuffer(head.bytes.getSlice(at: head.bytes.readerIndex, length: fields)!)
            out.writeBytes(AgentHeaders.lines)
            if closing { out.writeStaticString("Connection: close\r\n") }
            out.writeStaticString("\r\n")
            rawOut = out
        case .body(let body):
            if var out = rawOut, out.writableBytes >= body.readableBytes {
                rawOut = nil
                out.writeImmutableBuffer(body)
                rawOut = out
                return
            }
            writeRawOut()
            connection.writeRaw(body)
            pauseIfClientIsFull(upstream)
        case .end:
            writeRawOut()
            responseEnded = true
            context.flush()
            finishOrFinishRequest()
        }
    }

    /// How much of a raw body to gather behind its head before writing.
    private static func bodyRoom(_ body: RawBody) -> Int {
        switch body {
        case .length(let count): Int(min(count, 4096))
        case .chunked: 4096
        }
    }

    private func writeRawOut() {
        guard let out = rawOut else { return }
        rawOut = nil
        connection.writeRaw(out)
    }

    func upstreamDidFinishRead() {
        guard connection.exchange === self else { return }
        writeRawOut()
        guard !flushesAtEnd else { return }
        connection.context?.flush()
    }

    func upstreamDidClose(error: Error?) {
        guard connection.context != nil, connection.exchange === self, case .relaying = phase else { return }
        if !responseStarted {
            let reason = error.map { "\($0)" } ?? "connection closed before a response"
            connection.services.logger.warning("upstream failed", metadata: ["upstream": "\(pool.transport)", "error": "\(reason)"])
            connection.fail(AgentError(.badGateway, "Connection closed by \(pool.transport.upstreamName)", details: "\(pool.transport): \(reason)"))
        } else if !responseEnded {
            // Half a response cannot be completed honestly: cut the client off too.
            connection.context?.close(promise: nil)
        } else if !requestEnded {
            // Answered early, then gone (an engine does so past 256 KiB of unread body):
            // writes to it would never drain, and the client would wait paused for
            // ever. Read on and drop the rest of the body (up to the drop limit), and
            // end the connection after the linger a refusal gets.
            upstreamGone = true
            connection.resumeReads()
            connection.closeAfterLinger()
        }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        guard connection.context != nil, connection.exchange === self else { return }
        if isWritable { connection.resumeReads() } else { connection.pauseReads() }
    }

    // MARK: After a 101

    private func hijack(_ upstream: UpstreamHandler, head: HTTPResponseHead) {
        guard case .relaying(_, let channel) = phase else { return }
        phase = .upgraded
        connection.upgraded()
        upstream.delegate = nil
        let clientHandlers: [ChannelHandler]
        let engineHandler: ChannelHandler
        if let console {
            connection.write(.head(console.upgradeResponse))
            connection.write(.end(nil), flush: true)
            let (browserSide, engineSide) = ConsoleBridge.makePair()
            clientHandlers = [WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)), browserSide]
            engineHandler = engineSide
        } else {
            var headers = head.headers
            AgentHeaders.add(to: &headers)
            connection.write(.head(HTTPResponseHead(version: head.version, status: head.status, headers: headers)))
            connection.write(.end(nil), flush: true)
            let (clientSide, engineSide) = RawRelayHandler.makePair()
            clientHandlers = [clientSide]
            engineHandler = engineSide
        }
        leaveHTTP(upstream: upstream, channel: channel, clientHandlers: clientHandlers, engineHandler: engineHandler)
    }

    /// Puts `clientHandlers` and `engineHandler` at the ends of the two pipelines, then
    /// takes the HTTP handlers (the connection's first) out of both, so bytes the HTTP
    /// decoders still hold (sent right behind the request or the 101) reach the new
    /// handlers, not the connection.
    private func leaveHTTP(upstream: UpstreamHandler, channel engineChannel: Channel, clientHandlers: [ChannelHandler], engineHandler: ChannelHandler) {
        guard let context = connection.context else { return }
        let clientPipeline = context.pipeline.syncOperations
        // The client's half-close waits until its decoder has handed on what it holds.
        let clientGate = InputCloseGate()
        do {
            try clientPipeline.addHandlers(clientHandlers)
            if let decoder = connection.httpHandlers.first(where: { $0 is ByteToMessageHandler<HTTPRequestDecoder> }) {
                try clientPipeline.addHandler(clientGate, position: .before(decoder))
            }
            try engineChannel.pipeline.syncOperations.addHandler(engineHandler)
        } catch {
            context.close(promise: nil)
            engineChannel.close(promise: nil)
            return
        }
        let clientChannel = context.channel
        connection.services.metrics?.upgraded(console == nil ? .hijack : .console, closed: clientChannel.closeFuture)
        // A decoder hands on the bytes it still holds (sent right behind the request or
        // the 101, maybe in the same read) when its removal completes: later, on this
        // loop, in the order the removals were asked for (encoders leave at once).
        // The upstream's goes first: its response decoder also sees every write (to
        // frame answers by their requests) and traps on raw bytes, so the client's
        // bytes must not be written into that pipeline before it has gone. The
        // client's request decoder sees no writes, so the upstream's leftovers may be
        // written past it. Removals complete outside any read, without the flush a
        // read's end brings: flush what they handed on at once.
        upstream.removeHTTPHandlers(on: context.eventLoop).assumeIsolated().whenComplete { _ in
            clientChannel.flush()
        }
        // The client ended its side while the agent still spoke HTTP (before the 101):
        // that end was taken then, so the engine is told once the client's bytes are through.
        let clientEnded = connection.machine.inputClosed
        clientPipeline.removeHandler(context: context, promise: nil)
        let clientRemovals = connection.httpHandlers.map { clientPipeline.removeHandler($0) }
        EventLoopFuture.andAllComplete(clientRemovals, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            engineChannel.flush()
            clientGate.release()
            if clientEnded { engineChannel.close(mode: .output, promise: nil) }
        }
        clientChannel.read()
        engineChannel.read()
    }
}
