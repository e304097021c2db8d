import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

/// One client connection's requests, one at a time: authenticate and route from
/// the head, then either answer from the agent or relay to the engine, streaming
/// the body both ways with back-pressure. A `101` from the engine turns the
/// connection into a raw two-way relay.
final class ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// One request relayed to an upstream.
    private final class Exchange {
        let upstream: UpstreamHandler
        let channel: Channel
        let pool: UpstreamPool
        var requestEnded: Bool
        var responseStarted = false
        var responseEnded = false
        /// The engine's 101, held until its `.end` has passed the HTTP decoder.
        var upgrade: HTTPResponseHead?
        /// Set for a console: its 101 becomes a websocket, not a raw relay.
        var console: ConsoleRequest?

        init(upstream: UpstreamHandler, channel: Channel, pool: UpstreamPool, requestEnded: Bool) {
            self.upstream = upstream
            self.channel = channel
            self.pool = pool
            self.requestEnded = requestEnded
        }
    }

    /// One request answered by the agent itself.
    private final class AgentExchange {
        var request: AgentRequest
        /// Collecting a small body before answering (e.g. a rename's JSON).
        var collecting: Bool
        var requestEnded = false
        var responded = false

        init(request: AgentRequest, collecting: Bool) {
            self.request = request
            self.collecting = collecting
        }
    }

    /// One streaming upload (`POST /browse/put`).
    private final class UploadExchange {
        let session: UploadSession

        init(session: UploadSession) {
            self.session = session
        }
    }

    private enum State {
        case idle
        case upload(UploadExchange)
        /// Answered, or answering, by the agent; body parts not collected are dropped.
        case agent(AgentExchange)
        /// Refused or failed before reaching anyone; the rest of the body is dropped.
        case draining
        /// A console being checked with the engine before its upgrade.
        case console
        /// Waiting for an upstream connection; request parts are held meanwhile
        /// (reads are paused, so at most one read's worth).
        case connecting(head: HTTPRequestHead, parts: [HTTPServerRequestPart], ended: Bool)
        case relaying(Exchange)
        case upgraded
    }

    private let services: AgentServices
    private let httpHandlers: [RemovableChannelHandler]
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false
    private var closeAfterResponse = false
    private var inputClosed = false
    /// A validated console waiting for its engine connection.
    private var pendingConsole: ConsoleRequest?
    /// The engine connection of this client's previous exchange, idle, kept for its next.
    private var keptUpstream: (pool: UpstreamPool, channel: Channel)?
    /// A HEAD request's answer carries headers only (docker's client starts with HEAD /_ping).
    private var isHeadRequest = false
    /// The last signature pair verified on this connection.
    private var verifiedPair: (publicKey: String, signature: String)?
    /// The descriptor of a file being streamed to the client, closed once done or on close.
    private var streamingFile: Int32?
    /// Continues a file stream once the client can take more.
    private var whenWritable: (() -> Void)?

    /// Bytes read from disk per step of a download.
    static let fileChunkSize: Int64 = 256 * 1024

    /// `httpHandlers` are the HTTP codec handlers in front of this one, removed on a hijack.
    init(services: AgentServices, httpHandlers: [RemovableChannelHandler]) {
        self.services = services
        self.httpHandlers = httpHandlers
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let body):
            switch state {
            case .connecting(let head, var parts, let ended):
                parts.append(.body(body))
                state = .connecting(head: head, parts: parts, ended: ended)
            case .relaying(let exchange):
                exchange.upstream.write(.body(.byteBuffer(body)))
                if !exchange.upstream.isWritable {
                    readsPaused = true
                }
            case .agent(let exchange) where exchange.collecting:
                var body = body
                let size = (exchange.request.body?.readableBytes ?? 0) + body.readableBytes
                if size > AgentEndpoints.maxBodySize {
                    exchange.collecting = false
                    exchange.request.body = nil
                    closeAfterResponse = true
                    exchange.responded = true
                    respond(.error(AgentError(.payloadTooLarge, "Request body too large", details: "at most \(AgentEndpoints.maxBodySize) bytes")), context: context)
                } else if exchange.request.body == nil {
                    exchange.request.body = body
                } else {
                    exchange.request.body!.writeBuffer(&body)
                }
            case .upload(let upload):
                // Reading goes on while the disk keeps up; only a backlog pauses it.
                guard let backlog = upload.session.consume(body) else { break }
                readsPaused = true
                backlog.assumeIsolated().whenComplete { result in
                    guard let context = self.context, case .upload(let current) = self.state, current === upload else { return }
                    switch result {
                    case .success: self.resumeReads(context: context)
                    case .failure(let error): self.uploadFailed(error, context: context)
                    }
                }
            case .idle, .agent, .draining, .upgraded, .console:
                break
            }
        case .end(let trailers):
            switch state {
            case .connecting(let head, var parts, _):
                parts.append(.end(trailers))
                state = .connecting(head: head, parts: parts, ended: true)
            case .relaying(let exchange):
                exchange.requestEnded = true
                exchange.upstream.write(.end(trailers))
                exchange.upstream.flush()
                if exchange.responseEnded { finishExchange(exchange, context: context) }
            case .agent(let exchange):
                exchange.requestEnded = true
                if exchange.collecting {
                    exchange.collecting = false
                    answer(exchange, context: context)
                } else if exchange.responded {
                    finishAnswered(context: context)
                }
            case .draining:
                finishAnswered(context: context)
            case .upload(let upload):
                upload.session.finish().assumeIsolated().whenComplete { result in
                    guard let context = self.context, case .upload(let current) = self.state, current === upload else { return }
                    switch result {
                    case .success:
                        self.respond(.empty(.noContent), context: context)
                        self.finishAnswered(context: context)
                    case .failure(let error):
                        self.uploadFailed(error, context: context)
                    }
                }
            case .idle, .upgraded, .console:
                break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .relaying(let exchange) = state {
            exchange.upstream.flush()
        }
        context.fireChannelReadComplete()
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        closeAfterResponse = !head.isKeepAlive
        isHeadRequest = head.method == .HEAD
        let route = Router.route(method: head.method, uri: head.uri)
        if route.requiresSignature {
            let publicKey = head.headers.first(name: SignatureVerifier.publicKeyHeader)
            let signature = head.headers.first(name: SignatureVerifier.signatureHeader)
            do {
                // A keep-alive connection repeats the same pair: remembered here, it
                // costs neither the shared cache's lock nor its hashing. Only a pair
                // the verifier accepted is remembered, and association never changes.
                if publicKey == nil || publicKey != verifiedPair?.publicKey || signature != verifiedPair?.signature {
                    try services.verifier.verify(publicKey: publicKey, signature: signature)
                    verifiedPair = (publicKey!, signature!)
                }
            } catch .missingHeaders {
                state = .draining
                return respond(.error(.missingSignature), context: context)
            } catch {
                state = .draining
                return respond(.error(.invalidSignature), context: context)
            }
        }
        if let cluster = services.activeCluster, let local = cluster.localNode,
           dispatchInCluster(head, route: route, cluster: cluster, local: local, context: context) {
            return
        }
        switch route {
        case .engine:
            startRelay(head: ForwardedHeaders.engineRequest(from: head), pool: services.engine, context: context)
        case .browse(.put, let volumeID):
            startUpload(head: head, legacyVolumeID: volumeID, context: context)
        case .console(let kind):
            startConsole(head: head, kind: kind, context: context)
        default:
            let exchange = AgentExchange(request: AgentRequest(route: route, head: head), collecting: route.takesJSONBody)
            state = .agent(exchange)
            if !exchange.collecting { answer(exchange, context: context) }
        }
    }

    // MARK: Console

    /// Checks the id with the engine, then asks it for a hijacked stream; the engine's
    /// 101 is answered with the websocket handshake (`bridgeConsole`).
    private func startConsole(head: HTTPRequestHead, kind: ConsoleKind, context: ChannelHandlerContext) {
        let console: ConsoleRequest
        do {
            console = try ConsoleRequest(kind: kind, head: head)
        } catch {
            state = .draining
            return respond(.error(error), context: context)
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
            case .success(let response) where response.head.status == .notFound:
                self.state = .idle
                self.respond(.error(AgentError(.notFound, "No such \(kind == .exec ? "exec instance" : "container"): \(console.id)")), context: context)
                self.resumeReads(context: context)
            case .success(let response):
                self.state = .idle
                self.respond(.error(AgentError(.badGateway, "The Docker engine answered \(response.head.status.code)")), context: context)
                self.resumeReads(context: context)
            case .failure(let error):
                self.state = .idle
                self.respond(.error(AgentError(.badGateway, "Unable to reach the Docker engine", details: "\(error)")), context: context)
                self.resumeReads(context: context)
            }
        }
    }

    /// The engine hijacked its side: finish the browser's websocket handshake and
    /// swap both pipelines for the console bridge.
    private func bridgeConsole(_ console: ConsoleRequest, exchange: Exchange, context: ChannelHandlerContext) {
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

    // MARK: Cluster

    /// Sends the request where its cluster scope says, unless that is this node.
    /// Returns false when the request is this node's to serve.
    private func dispatchInCluster(
        _ head: HTTPRequestHead, route: Route, cluster: ClusterMembership, local: NodeIdentity, context: ChannelHandlerContext
    ) -> Bool {
        // A request another agent sent here is served here, never sent on again.
        let forwarded = head.headers.contains(name: Aggregator.hopHeader)
        var onward = head
        onward.headers.replaceOrAdd(name: Aggregator.hopHeader, value: "1")
        switch Router.scope(for: route, method: head.method, uri: head.uri, headers: head.headers) {
        case .node(let name) where name != local.name:
            guard !forwarded else {
                state = .draining
                respond(.error(AgentError(.badGateway, "This agent runs on node \(local.name), not on \(name)", details: "cluster membership changed")), context: context)
                return true
            }
            guard let member = cluster.member(named: name) else {
                state = .draining
                respond(.error(AgentError(.notFound, "No agent found for node \(name)", details: "known nodes: \(cluster.members.map(\.nodeName).joined(separator: ", "))")), context: context)
                return true
            }
            startRelay(head: onward, pool: cluster.pool(for: member), context: context)
            return true
        case .manager where !local.isManager && !forwarded:
            guard let manager = cluster.remoteManager() else {
                state = .draining
                respond(.error(AgentError(.serviceUnavailable, "No manager agent is reachable from node \(local.name)")), context: context)
                return true
            }
            startRelay(head: onward, pool: cluster.pool(for: manager), context: context)
            return true
        case .aggregate(let kind) where !forwarded:
            guard let aggregator = services.aggregator else { return false }
            let exchange = AgentExchange(request: AgentRequest(route: route, head: head), collecting: false)
            state = .agent(exchange)
            let answer = aggregator.aggregate(head, kind: kind, on: context.eventLoop).map { merged -> AgentResponse in
                guard merged.status == .ok else {
                    return .error(AgentError(.badGateway, "No node answered", details: "unreachable: \(merged.unreachableNodes.joined(separator: ","))"))
                }
                var headers = merged.headers
                if !merged.unreachableNodes.isEmpty {
                    headers.replaceOrAdd(name: "X-PortainerAgent-Unreachable-Nodes", value: merged.unreachableNodes.joined(separator: ","))
                }
                return AgentResponse(status: .ok, headers: headers, body: merged.body)
            }
            deliver(answer, for: exchange, context: context)
            return true
        default:
            return false
        }
    }

    // MARK: Agent answers

    private func answer(_ exchange: AgentExchange, context: ChannelHandlerContext) {
        deliver(services.endpoints.respond(to: exchange.request, on: context.eventLoop), for: exchange, context: context)
    }

    /// Writes the response `future` brings once it completes, if the exchange is still current.
    private func deliver(_ future: EventLoopFuture<AgentResponse>, for exchange: AgentExchange, context: ChannelHandlerContext) {
        future.assumeIsolated().whenComplete { result in
            guard let context = self.context, case .agent(let current) = self.state, current === exchange, !exchange.responded else {
                // Nobody to answer any more: an opened download must still be closed.
                if case .success(let response) = result, case .file(let file, _) = response.body { Glibc.close(file.descriptor) }
                return
            }
            let response: AgentResponse
            switch result {
            case .success(let success): response = success
            case .failure(let error): response = .error(AgentError(.internalServerError, "Internal error", details: "\(error)"))
            }
            self.respond(response, context: context) {
                exchange.responded = true
                if exchange.requestEnded { self.finishAnswered(context: context) }
            }
        }
    }

    private func startUpload(head: HTTPRequestHead, legacyVolumeID: String?, context: ChannelHandlerContext) {
        let session: UploadSession
        do {
            guard let query = QueryParameters(uri: head.uri) else { throw AgentError(.badRequest, "Malformed query string") }
            // Opening the root is one or two openat calls: fine on the loop.
            let location = try services.endpoints.browser.locate(volumeID: legacyVolumeID ?? query["volumeID"])
            session = try UploadSession(
                contentType: head.headers.first(name: "Content-Type"), location: location,
                threadPool: services.endpoints.threadPool, eventLoop: context.eventLoop)
        } catch let error as AgentError {
            state = .draining
            return respond(.error(error), context: context)
        } catch {
            state = .draining
            return respond(.error(AgentError(.internalServerError, "\(error)")), context: context)
        }
        state = .upload(UploadExchange(session: session))
        if head.headers.first(name: "Expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
    }

    /// A refused or failed upload: nothing was written, say why and hang up rather
    /// than read the rest of a possibly huge body.
    private func uploadFailed(_ error: Error, context: ChannelHandlerContext) {
        if case .upload(let upload) = state { upload.session.abort() }
        let agentError = error as? AgentError ?? AgentError(.internalServerError, "Upload failed", details: "\(error)")
        state = .draining
        closeAfterResponse = true
        respond(.error(agentError), context: context) {
            context.close(promise: nil)
        }
    }

    /// The agent's answer is written and the request has ended: ready for the next.
    private func finishAnswered(context: ChannelHandlerContext) {
        state = .idle
        if closeAfterResponse || inputClosed { context.close(promise: nil) }
    }

    /// Writes an agent response, streaming a file body from disk; `then` runs once
    /// all of it is written. The request may still be streaming in; its remaining
    /// body is dropped.
    private func respond(_ response: AgentResponse, context: ChannelHandlerContext, then done: @escaping () -> Void = {}) {
        var headers = response.headers
        AgentHeaders.add(to: &headers)
        headers.replaceOrAdd(name: "Content-Length", value: String(response.contentLength))
        if closeAfterResponse { headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        if isHeadRequest {
            if case .file(let file, _) = response.body { Glibc.close(file.descriptor) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return done()
        }
        switch response.body {
        case .bytes(let bytes):
            if !bytes.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            done()
        case .file(let file, let range):
            context.flush()
            streamingFile = file.descriptor
            streamFile(file.descriptor, from: range.lowerBound, remaining: Int64(range.count), context: context, then: done)
        }
    }

    /// Reads the next chunk on the thread pool and writes it, then goes on as soon as
    /// the client can take more: memory stays at a chunk or two whatever the size.
    private func streamFile(_ fd: Int32, from offset: Int64, remaining: Int64, context: ChannelHandlerContext, then done: @escaping () -> Void) {
        guard remaining > 0 else {
            closeStreamingFile()
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return done()
        }
        let size = Int(min(remaining, Self.fileChunkSize))
        let allocator = context.channel.allocator
        services.endpoints.threadPool.runIfActive(eventLoop: context.eventLoop) { () throws -> ByteBuffer in
            var buffer = allocator.buffer(capacity: size)
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { bytes in
                let count = pread(fd, bytes.baseAddress, size, off_t(offset))
                guard count > 0 else { throw IOError(errnoCode: count < 0 ? errno : EIO, reason: "pread") }
                return count
            }
            _ = count
            return buffer
        }.assumeIsolated().whenComplete { result in
            guard let context = self.context, self.streamingFile == fd else { return }
            switch result {
            case .success(let buffer):
                let count = Int64(buffer.readableBytes)
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                let next = { self.streamFile(fd, from: offset + count, remaining: remaining - count, context: context, then: done) }
                if context.channel.isWritable { next() } else { self.whenWritable = next }
            case .failure(let error):
                // The file shrank or cannot be read: the promised length cannot be
                // delivered, and only closing tells the client so.
                self.services.logger.warning("download failed", metadata: ["error": "\(error)"])
                self.closeStreamingFile()
                context.close(promise: nil)
            }
        }
    }

    private func closeStreamingFile() {
        if let fd = streamingFile {
            Glibc.close(fd)
            streamingFile = nil
        }
        whenWritable = nil
    }

    // MARK: Relay

    private func startRelay(
        head: HTTPRequestHead, pool: UpstreamPool, context: ChannelHandlerContext,
        parts: [HTTPServerRequestPart] = [], ended: Bool = false
    ) {
        state = .connecting(head: head, parts: parts, ended: ended)
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

    private func upstreamAcquired(_ result: Result<Channel, Error>, pool: UpstreamPool) {
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
            services.logger.warning("engine unreachable", metadata: ["upstream": "\(pool.transport)", "error": "\(error)"])
            respond(.error(AgentError(.badGateway, "Unable to reach the Docker engine", details: "\(pool.transport): \(error)")), context: context)
            state = ended ? .idle : .draining
            resumeReads(context: context)
            return
        }
        let exchange = Exchange(upstream: upstream, channel: channel, pool: pool, requestEnded: ended)
        exchange.console = pendingConsole
        pendingConsole = nil
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

    private func finishExchange(_ exchange: Exchange, context: ChannelHandlerContext) {
        exchange.upstream.delegate = nil
        state = .idle
        if closeAfterResponse || inputClosed {
            exchange.pool.release(exchange.channel, reusable: exchange.upstream.isReusable)
            context.close(promise: nil)
        } else {
            // Keep-alive clients mostly send the next request soon: keeping the upstream
            // saves a pool round trip; it goes back to the pool when this connection ends.
            if exchange.upstream.isReusable {
                keptUpstream = (exchange.pool, exchange.channel)
            } else {
                exchange.channel.close(promise: nil)
            }
            resumeReads(context: context)
        }
    }

    private func hijack(_ exchange: Exchange, head: HTTPResponseHead, context: ChannelHandlerContext) {
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
    private func leaveHTTP(
        _ exchange: Exchange, clientHandlers: [ChannelHandler], engineHandler: ChannelHandler, context: ChannelHandlerContext
    ) {
        let clientPipeline = context.pipeline.syncOperations
        do {
            try clientPipeline.addHandlers(clientHandlers)
            try exchange.channel.pipeline.syncOperations.addHandler(engineHandler)
        } catch {
            context.close(promise: nil)
            exchange.channel.close(promise: nil)
            return
        }
        let clientChannel = context.channel
        clientPipeline.removeHandler(context: context, promise: nil)
        for handler in httpHandlers {
            clientPipeline.removeHandler(handler, promise: nil)
        }
        exchange.upstream.removeHTTPHandlers()
        clientChannel.read()
        exchange.channel.read()
    }

    private func resumeReads(context: ChannelHandlerContext) {
        readsPaused = false
        if readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: Channel events

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let next = whenWritable {
            whenWritable = nil
            next()
        }
        if case .relaying(let exchange) = state {
            if context.channel.isWritable {
                exchange.upstream.resumeReading()
            } else {
                exchange.upstream.pauseReading()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            switch state {
            case .idle:
                context.close(promise: nil)
            case .relaying(let exchange) where !exchange.requestEnded:
                // The request was cut off: the engine can never see its end.
                exchange.upstream.close()
                context.close(promise: nil)
            default:
                break  // answer what was asked, then close
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .relaying(let exchange):
            exchange.upstream.delegate = nil
            exchange.upstream.close()
        case .upload(let upload):
            upload.session.abort()
        default:
            break
        }
        closeStreamingFile()
        if let kept = keptUpstream {
            keptUpstream = nil
            kept.pool.release(kept.channel, reusable: true)
        }
        state = .idle
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError, case .idle = state {
            closeAfterResponse = true
            respond(.error(AgentError(.badRequest, "Malformed HTTP request", details: "\(error)")), context: context)
        } else {
            services.logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}

extension ConnectionHandler: UpstreamDelegate {
    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        guard let context, case .relaying(let exchange) = state else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols {
                // The decoder still has this response's `.end` to deliver; switch to
                // raw bytes only after it, or it would reach the raw relay.
                exchange.upgrade = head
                return
            }
            var headers = head.headers
            if head.status.code >= 200 {
                exchange.responseStarted = true
                AgentHeaders.add(to: &headers)
                if !head.isKeepAlive || isCloseDelimited(head) { closeAfterResponse = true }
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
                // body on, but this upstream cannot be reused.
                closeAfterResponse = true
            }
        }
    }

    func upstreamDidFinishRead() {
        context?.flush()
    }

    func upstreamDidClose(error: Error?) {
        guard let context, case .relaying(let exchange) = state else { return }
        if !exchange.responseStarted {
            let reason = error.map { "\($0)" } ?? "connection closed before a response"
            services.logger.warning("engine failed", metadata: ["error": "\(reason)"])
            respond(.error(AgentError(.badGateway, "The Docker engine closed the connection", details: reason)), context: context)
            state = exchange.requestEnded ? .idle : .draining
            resumeReads(context: context)
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
    private func isCloseDelimited(_ head: HTTPResponseHead) -> Bool {
        let code = head.status.code
        if code == 204 || code == 304 { return false }
        return !head.headers.contains(name: "content-length")
            && !head.headers[canonicalForm: "transfer-encoding"].contains("chunked")
    }
}
