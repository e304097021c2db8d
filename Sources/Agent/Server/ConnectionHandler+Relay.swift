import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

// Relaying to an upstream (the engine or a peer agent), and the hijack after a 101.
extension ConnectionHandler {
    func startRelay(
        head: HTTPRequestHead, pool: UpstreamPool, context: ChannelHandlerContext,
        parts: [HTTPServerRequestPart] = [], ended: Bool = false, flushesAtEnd: Bool = false
    ) {
        state = .connecting(head: head, parts: parts, ended: ended)
        pendingFlushesAtEnd = flushesAtEnd
        readsPaused = true
        if let kept = keptUpstream {
            keptUpstream = nil
            if kept.pool === pool, kept.channel.isActive { return upstreamAcquired(.success(kept.channel), pool: pool) }
            kept.pool.release(kept.channel, reusable: true)
        }
        pool.acquire(on: context.eventLoop).assumeIsolated().whenComplete { result in
            self.upstreamAcquired(result, pool: pool)
        }
    }

    func upstreamAcquired(_ result: Result<Channel, Error>, pool: UpstreamPool) {
        guard let context, case .connecting(let head, let parts, let ended) = state else {
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
            services.logger.warning("upstream unreachable", metadata: ["upstream": "\(pool.transport)", "error": "\(error)"])
            return failed(AgentError(.badGateway, "Unable to reach \(pool.transport.upstreamName)", details: "\(pool.transport): \(error)"), context: context)
        }
        let exchange = Exchange(upstream: upstream, channel: channel, pool: pool, requestEnded: ended)
        exchange.console = pendingConsole
        pendingConsole = nil
        exchange.flushesAtEnd = pendingFlushesAtEnd
        pendingFlushesAtEnd = false
        state = .relaying(exchange)
        upstream.begin(delegate: self)
        upstream.write(.head(head))
        for part in parts {
            switch part {
            case .body(let body): upstream.write(.body(.byteBuffer(body)))
            case .end(let trailers): upstream.write(.end(trailers))
            case .head: break
            }
        }
        upstream.flush()
        if upstream.isWritable { resumeReads(context: context) }
    }

    func finishExchange(_ exchange: Exchange, context: ChannelHandlerContext) {
        exchange.upstream.delegate = nil
        state = .idle
        // Reused only when both messages ended cleanly, the request first: an upstream
        // that answered before the request's end may not have read the rest as a body.
        let reusable = exchange.upstream.isReusable && !exchange.answeredEarly
        if closeAfterResponse || inputClosed && pipelined.isEmpty {
            exchange.pool.release(exchange.channel, reusable: reusable)
            context.close(promise: nil)
        } else {
            // Keep-alive clients mostly send the next request soon: keeping the upstream
            // saves a pool round trip; it goes back to the pool when this connection ends.
            if reusable {
                keptUpstream = (exchange.pool, exchange.channel)
            } else {
                exchange.channel.close(promise: nil)
            }
            resumeReads(context: context)
        }
    }

    func hijack(_ exchange: Exchange, head: HTTPResponseHead, context: ChannelHandlerContext) {
        if let console = exchange.console {
            return bridgeConsole(console, exchange: exchange, context: context)
        }
        state = .upgraded
        var headers = head.headers
        AgentHeaders.add(to: &headers)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: head.status, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        exchange.upstream.delegate = nil

        let (clientSide, engineSide) = RawRelayHandler.makePair()
        leaveHTTP(exchange, clientHandlers: [clientSide], engineHandler: engineSide, context: context)
    }

    /// After a 101: puts `clientHandlers` and `engineHandler` at the ends of the two
    /// pipelines, then takes the HTTP handlers (this one first) out of both, so bytes
    /// the HTTP decoders still hold (sent right behind the request or the 101) reach
    /// the new handlers, not us.
    func leaveHTTP(
        _ exchange: Exchange, clientHandlers: [ChannelHandler], engineHandler: ChannelHandler, context: ChannelHandlerContext
    ) {
        let clientPipeline = context.pipeline.syncOperations
        // The client's half-close waits until its decoder has handed on what it holds.
        let clientGate = InputCloseGate()
        do {
            try clientPipeline.addHandlers(clientHandlers)
            if let decoder = httpHandlers.first(where: { $0 is ByteToMessageHandler<HTTPRequestDecoder> }) {
                try clientPipeline.addHandler(clientGate, position: .before(decoder))
            }
            try exchange.channel.pipeline.syncOperations.addHandler(engineHandler)
        } catch {
            context.close(promise: nil)
            exchange.channel.close(promise: nil)
            return
        }
        let clientChannel = context.channel
        let engineChannel = exchange.channel
        clientPipeline.removeHandler(context: context, promise: nil)
        // A decoder hands on the bytes it still holds (sent right behind the request or
        // the 101, maybe in the same read) when its removal completes, outside any read
        // and so without the flush a read's end brings: flush them on at once.
        let clientRemovals = httpHandlers.map { clientPipeline.removeHandler($0) }
        EventLoopFuture.andAllComplete(clientRemovals, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            engineChannel.flush()
            clientGate.release()
        }
        exchange.upstream.removeHTTPHandlers(on: context.eventLoop).assumeIsolated().whenComplete { _ in
            clientChannel.flush()
        }
        clientChannel.read()
        engineChannel.read()
    }
}

extension ConnectionHandler: UpstreamDelegate {
    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        guard let context, case .relaying(let exchange) = state else { return }
        switch part {
        case .head(var head):
            // The status line goes on as the upstream wrote it (`101 UPGRADED`).
            head.status = exchange.upstream.receivedStatus ?? head.status
            if head.status.code == 101 {
                // The decoder still has this response's `.end` to deliver; switch to
                // raw bytes only after it, or it would reach the raw relay.
                exchange.upgrade = head
                return
            }
            var headers = head.headers
            if head.status.code >= 200 {
                // The client decodes what the upstream framed only if it is framed the
                // one way both sides read alike; anything else is the upstream's fault.
                switch MessageFraming.responseBody(of: head) {
                case .failure(let problem):
                    exchange.upstream.delegate = nil
                    exchange.upstream.close()
                    return failed(AgentError(.badGateway, "The upstream framed its answer ambiguously", details: problem.description), context: context)
                case .success(let body):
                    headers = MessageFraming.normalized(headers, body: body)
                }
                exchange.responseStarted = true
                AgentHeaders.add(to: &headers)
                if !head.isKeepAlive || isCloseDelimited(head) { closeAfterResponse = true }
                // A connection that ends after this answer says so: a client must never
                // find a kept-alive connection closed under its next request.
                if closeAfterResponse, head.isKeepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: head.status, headers: headers))), promise: nil)
            if head.status.code < 200 { context.flush() }
        case .body(let body):
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            if !context.channel.isWritable {
                context.flush()
                exchange.upstream.pauseReading()
            }
        case .end(let trailers):
            if let upgrade = exchange.upgrade {
                return hijack(exchange, head: upgrade, context: context)
            }
            exchange.responseEnded = true
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            if exchange.requestEnded {
                finishExchange(exchange, context: context)
            } else {
                // The engine answered before the request body ended: keep passing the
                // body on, but neither this upstream nor the client connection is reused.
                exchange.answeredEarly = true
                closeAfterResponse = true
            }
        }
    }

    func upstreamDidFinishRead() {
        if case .relaying(let exchange) = state, exchange.flushesAtEnd { return }
        context?.flush()
    }

    func upstreamDidClose(error: Error?) {
        guard let context, case .relaying(let exchange) = state else { return }
        if !exchange.responseStarted {
            let reason = error.map { "\($0)" } ?? "connection closed before a response"
            services.logger.warning("engine failed", metadata: ["error": "\(reason)"])
            failed(AgentError(.badGateway, "The Docker engine closed the connection", details: reason), context: context)
        } else if !exchange.responseEnded {
            // Half a response cannot be completed honestly: cut the client off too.
            context.close(promise: nil)
        }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        guard let context else { return }
        if isWritable {
            resumeReads(context: context)
        } else {
            readsPaused = true
        }
    }

    /// A response without Content-Length or chunked framing ends when the
    /// connection does, so the client connection must close after it.
    func isCloseDelimited(_ head: HTTPResponseHead) -> Bool {
        let code = head.status.code
        if code == 204 || code == 304 || code < 200 || isHeadRequest { return false }
        return !head.headers.contains(name: "content-length")
            && !head.headers[canonicalForm: "transfer-encoding"].contains("chunked")
    }
}
