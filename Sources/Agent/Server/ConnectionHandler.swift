import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

/// One client connection's requests, one at a time: authenticate and route from
/// the head, then either answer from the agent or relay to the engine or a peer
/// agent, streaming the body both ways with back-pressure. A `101` from upstream
/// turns the connection into a raw two-way relay (or a console websocket).
///
/// This file holds the state and the request side; the answers, the relay, the
/// cluster dispatch and the console live in the `ConnectionHandler+*` files.
final class ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// One request relayed to an upstream.
    final class Exchange {
        let upstream: UpstreamHandler
        let channel: Channel
        let pool: UpstreamPool
        var requestEnded: Bool
        var responseStarted = false
        var responseEnded = false
        /// The response ended before the request did.
        var answeredEarly = false
        /// The engine's 101, held until its `.end` has passed the HTTP decoder.
        var upgrade: HTTPResponseHead?
        /// Set for a console: its 101 becomes a websocket, not a raw relay.
        var console: ConsoleRequest?
        /// The client reads the whole response before using any of it (a member's part
        /// of another agent's aggregated list): flushed once, at its end, rather than
        /// once per engine read.
        var flushesAtEnd = false

        init(upstream: UpstreamHandler, channel: Channel, pool: UpstreamPool, requestEnded: Bool) {
            self.upstream = upstream
            self.channel = channel
            self.pool = pool
            self.requestEnded = requestEnded
        }
    }

    /// One request answered by the agent itself.
    final class AgentExchange {
        var request: AgentRequest
        let handler: any AgentHandler
        /// Collecting a small body before answering (e.g. a rename's JSON).
        var collecting: Bool
        var requestEnded = false
        var responded = false

        init(request: AgentRequest, handler: any AgentHandler, collecting: Bool) {
            self.request = request
            self.handler = handler
            self.collecting = collecting
        }
    }

    /// One streaming upload (`POST /browse/put`).
    final class UploadExchange {
        let session: UploadSession

        init(session: UploadSession) {
            self.session = session
        }
    }

    enum State {
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

    let services: AgentServices
    let httpHandlers: [RemovableChannelHandler]
    var state = State.idle {
        didSet {
            if case .idle = state {
                idleSince = .now()
                armHeaderTimer()
            }
        }
    }
    /// Closes a connection that sends no complete request head in time. Armed at
    /// most once per timeout, not per request: it checks `idleSince` when it fires.
    var headerTimer: Scheduled<Void>?
    /// When the connection last started waiting for a request head.
    var idleSince = NIODeadline.now()
    /// Parts of requests the client sent behind the one being served (HTTP
    /// pipelining), served in order once it is answered and the client has taken the
    /// answers so far (the channel is writable). Reads are held only while some wait
    /// here: a client that waits for each answer never has its reads paused, which
    /// would cost two `epoll_ctl` calls per request.
    var pipelined: CircularBuffer<HTTPServerRequestPart> = []
    var servingPipelined = false
    /// What `pipelined` holds, against `maxPipelinedRequests` and `maxPipelinedBytes`.
    var pipelinedRequests = 0
    var pipelinedBytes = 0
    /// One read can bring many requests; a client that sends more than this many
    /// without taking the answers is not waiting for them: it is cut off.
    static let maxPipelinedRequests = 128
    static let maxPipelinedBytes = 1 << 20
    /// Set once the connection is being cut off: whatever the decoder still delivers is dropped.
    var discardingInput = false
    var context: ChannelHandlerContext?
    var readsPaused = false
    var readPending = false
    var closeAfterResponse = false
    /// The agent is stopping: every answer from now on is the connection's last.
    var quiescing = false
    /// Whether a request head has arrived on this connection yet.
    var receivedRequest = false
    /// Body bytes of the current request dropped unread (refused, answered without
    /// its body, or too large). Past `dropLimit` the connection closes once its
    /// answer is written: a huge body is not read to its end for nothing.
    var droppedBodyBytes = 0
    static let dropLimit = 1 << 20
    var inputClosed = false
    /// The current request's body is still arriving (it has one and its end has not come).
    var requestBodyOpen = false
    /// The current request's end has arrived.
    var requestEnded = true
    /// The current request asked for an upgrade: the decoder reads nothing after its
    /// head, so any answer but the upstream's 101 is the connection's last.
    var isUpgradeRequest = false
    /// Closes a connection whose request body stops arriving while the agent reads it.
    var bodyTimer: Scheduled<Void>?
    /// When a body byte last arrived, or reading last resumed.
    var bodyProgress = NIODeadline.now()
    /// A validated console waiting for its engine connection.
    var pendingConsole: ConsoleRequest?
    /// `Exchange.flushesAtEnd` for the relay waiting for its upstream connection.
    var pendingFlushesAtEnd = false
    /// The engine connection of this client's previous exchange, idle, kept for its next.
    var keptUpstream: (pool: UpstreamPool, channel: Channel)?
    /// A HEAD request's answer carries headers only (docker's client starts with HEAD /_ping).
    var isHeadRequest = false
    /// The last signature pair verified on this connection.
    var verifiedPair: (publicKey: String, signature: String)?
    /// The descriptor of a file being streamed to the client, closed once done or on close.
    var streamingFile: Int32?
    /// Continues a file stream once the client can take more.
    var whenWritable: (() -> Void)?

    /// How long a connection accepted just before shutdown may take to send its
    /// first request.
    static let firstRequestGrace = TimeAmount.seconds(1)

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
        headerTimer?.cancel()
        headerTimer = nil
        bodyTimer?.cancel()
        bodyTimer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeaderTimer()
        context.fireChannelActive()
    }

    /// A slow or silent client cannot hold a connection forever before its headers.
    /// A timer already armed stays: when it fires it re-arms for the latest idle
    /// period, and a busy connection arms a new one when it next becomes idle.
    func armHeaderTimer() {
        guard headerTimer == nil, let context else { return }
        let timeout = TimeAmount.fromSeconds(services.configuration.headerTimeout)
        headerTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: idleSince + timeout) {
            self.headerTimer = nil
            guard let context = self.context, case .idle = self.state else { return }
            guard NIODeadline.now() >= self.idleSince + timeout else { return self.armHeaderTimer() }
            self.services.logger.debug("closing a connection that sent no request head in time", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            context.close(promise: nil)
        }
    }

    /// A request body must keep arriving while the agent reads it: a client cannot hold
    /// a connection by promising a body it never sends. Time the agent itself holds
    /// reads (waiting for the engine, the disk, a peer) does not count. Armed once per
    /// timeout, like the header timer.
    func armBodyTimer() {
        guard bodyTimer == nil, let context else { return }
        let timeout = TimeAmount.fromSeconds(services.configuration.bodyTimeout)
        bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: bodyProgress + timeout) {
            self.bodyTimer = nil
            guard let context = self.context, self.requestBodyOpen else { return }
            if self.readsPaused { self.bodyProgress = .now() }
            guard NIODeadline.now() >= self.bodyProgress + timeout else { return self.armBodyTimer() }
            self.services.logger.debug("closing a connection whose request body stopped arriving", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            context.close(promise: nil)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discardingInput else { return }
        let part = unwrapInboundIn(data)
        if !pipelined.isEmpty {
            return enqueue(part, context: context)
        }
        if case .head = part, !isIdle || !context.channel.isWritable {
            return enqueue(part, context: context)
        }
        serve(part, context: context)
    }

    /// Holds a part for later (see `pipelined`); a client past the limits is cut off.
    func enqueue(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head: pipelinedRequests += 1
        case .body(let body): pipelinedBytes += body.readableBytes
        case .end: break
        }
        guard pipelinedRequests <= Self.maxPipelinedRequests, pipelinedBytes <= Self.maxPipelinedBytes else {
            services.logger.debug("closing a connection that pipelined too much without reading", metadata: [
                "peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "requests": "\(pipelinedRequests)",
            ])
            discardingInput = true
            pipelined.removeAll()
            context.close(promise: nil)
            return
        }
        pipelined.append(part)
    }

    var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// Serves the pipelined requests that can go now: a waiting head only once
    /// the connection is idle, the parts behind it at once. Reading resumes once
    /// none are left. Calls made while serving return at once (the loop goes on).
    func servePipelined(context: ChannelHandlerContext) {
        guard !servingPipelined else { return }
        servingPipelined = true
        while let part = pipelined.first, self.context != nil, !discardingInput {
            if case .head = part, !isIdle || !context.channel.isWritable { break }
            pipelined.removeFirst()
            switch part {
            case .head: pipelinedRequests -= 1
            case .body(let body): pipelinedBytes -= body.readableBytes
            case .end: break
            }
            serve(part, context: context)
        }
        servingPipelined = false
        if pipelined.isEmpty, !readsPaused, readPending, self.context != nil, !isIdle || context.channel.isWritable {
            readPending = false
            context.read()
        }
    }

    func serve(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let body):
            bodyProgress = .now()
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
                if size > RouteTable.maxBodySize {
                    exchange.collecting = false
                    exchange.request.body = nil
                    closeAfterResponse = true
                    exchange.responded = true
                    respond(.error(AgentError(.payloadTooLarge, "Request body too large", details: "at most \(RouteTable.maxBodySize) bytes")), context: context)
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
            case .agent(let exchange):
                dropBody(body.readableBytes, answered: exchange.responded, context: context)
            case .draining:
                // Every refusal answers before it drains.
                dropBody(body.readableBytes, answered: true, context: context)
            case .idle, .upgraded, .console:
                break
            }
        case .end(let trailers):
            requestBodyOpen = false
            requestEnded = true
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

    /// Drops body bytes nobody reads; past `dropLimit` the connection is not kept:
    /// closed now if the answer is written, else once it is (see `deliver`).
    func dropBody(_ count: Int, answered: Bool, context: ChannelHandlerContext) {
        let wasOver = droppedBodyBytes > Self.dropLimit
        droppedBodyBytes += count
        guard !wasOver, droppedBodyBytes > Self.dropLimit else { return }
        closeAfterResponse = true
        if answered { context.close(promise: nil) }
    }

    func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        isUpgradeRequest = head.method == .CONNECT || head.headers.contains(name: "upgrade")
        closeAfterResponse = quiescing || !head.isKeepAlive || isUpgradeRequest
        droppedBodyBytes = 0
        receivedRequest = true
        requestEnded = false
        isHeadRequest = head.method == .HEAD
        // One framing rule before anything else: what is passed on is framed the way
        // it was read, or not at all.
        var head = head
        switch MessageFraming.requestBody(of: head) {
        case .failure(let problem):
            // Where its body ends cannot be known: nothing after this head is read as a request.
            requestBodyOpen = false
            refuse(AgentError(.badRequest, "Ambiguous request framing", details: problem.description), context: context)
            return closeAfterLinger(context: context)
        case .success(let body):
            requestBodyOpen = body != .none && body != .length(0)
            head.headers = MessageFraming.normalized(head.headers, body: body)
        }
        if requestBodyOpen {
            bodyProgress = .now()
            armBodyTimer()
        }
        let route = Router.route(method: head.method, uri: head.uri)
        if route.requiresSignature {
            let publicKey = head.headers.first(name: AgentHeaderName.publicKey)
            let signature = head.headers.first(name: AgentHeaderName.signature)
            do {
                // A keep-alive connection repeats the same pair: remembered here, it
                // costs neither the shared cache's lock nor its hashing. Only a pair
                // the verifier accepted is remembered, and association never changes.
                if publicKey == nil || publicKey != verifiedPair?.publicKey || signature != verifiedPair?.signature {
                    try services.verifier.verify(publicKey: publicKey, signature: signature)
                    verifiedPair = (publicKey!, signature!)
                }
            } catch {
                services.authenticationFailures.record(error, peer: context.remoteAddress)
                switch error {
                case .missingHeaders:
                    return refuse(.missingSignature, context: context)
                case .associationClosed:
                    return refuse(AgentError(
                        .forbidden, "No Portainer associated with this agent within AGENT_SECRET_TIMEOUT",
                        details: "restart the agent, or give it an AGENT_SECRET"), context: context)
                case .malformedHeaders, .invalidSignature:
                    return refuse(.invalidSignature, context: context)
                }
            }
        }
        if let cluster = services.activeCluster, let local = cluster.localNode,
           dispatchInCluster(head, route: route, cluster: cluster, local: local, context: context) {
            return
        }
        switch services.routes.plan(for: route) {
        case .relay:
            startRelay(head: ForwardedHeaders.engineRequest(from: head), pool: services.engine, context: context)
        case .upload(let put):
            startUpload(put, head: head, context: context)
        case .console(let kind):
            startConsole(head: head, kind: kind, context: context)
        case .answer(let handler, let collectsBody):
            let exchange = AgentExchange(request: AgentRequest(route: route, head: head), handler: handler, collecting: collectsBody)
            state = .agent(exchange)
            if !exchange.collecting { answer(exchange, context: context) }
        }
    }

    /// Answers a request the agent will not serve and ends the connection: the body, if
    /// any, is not waited for. Input is still read (and dropped) for a moment, so that the
    /// close does not reset the connection under the answer, then the connection closes.
    func refuse(_ error: AgentError, context: ChannelHandlerContext) {
        state = .draining
        closeAfterResponse = true
        respond(.error(error), context: context)
        if requestEnded { return finishAnswered(context: context) }
        // A request without a body ends right behind its head; any other is not waited for.
        if requestBodyOpen || isUpgradeRequest { closeAfterLinger(context: context) }
    }

    /// A request that could not be served (its upstream failed): the connection goes
    /// on only if the request has ended and nothing else asks for a close.
    func failed(_ error: AgentError, context: ChannelHandlerContext) {
        if requestEnded, !closeAfterResponse {
            respond(.error(error), context: context)
            state = .idle
        } else {
            refuse(error, context: context)
        }
        resumeReads(context: context)
    }

    /// Closes the connection after `refusalLinger`, whatever the client still sends.
    func closeAfterLinger(context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.refusalLinger) {
            self.context?.close(promise: nil)
        }
    }

    /// How long a refused connection is read (and dropped) before it closes.
    static let refusalLinger = TimeAmount.milliseconds(500)

    func resumeReads(context: ChannelHandlerContext) {
        bodyProgress = .now()
        readsPaused = false
        if !pipelined.isEmpty || servingPipelined {
            return servePipelined(context: context)
        }
        if readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: Channel events

    /// Reading waits while the agent is busy with what was read, and, between requests,
    /// while the client has not taken the answers so far: a client that never reads
    /// costs its socket buffers and at most one write buffer's worth of answers.
    func read(context: ChannelHandlerContext) {
        if readsPaused || !pipelined.isEmpty || isIdle && !context.channel.isWritable {
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
        if context.channel.isWritable, isIdle, !readsPaused {
            servePipelined(context: context)
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
        if event is ChannelShouldQuiesceEvent {
            // Shutting down: a busy connection closes after its answer, an idle one now;
            // but one just accepted, whose first request may be on its way (the client
            // connected before the listener closed), gets a moment to send it.
            quiescing = true
            closeAfterResponse = true
            pipelined.removeAll()
            guard isIdle else { return }
            if receivedRequest { return context.close(promise: nil) }
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.firstRequestGrace) {
                if let context = self.context, self.isIdle { context.close(promise: nil) }
            }
            return
        }
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
        pipelined.removeAll()
        requestBodyOpen = false
        if let kept = keptUpstream {
            keptUpstream = nil
            kept.pool.release(kept.channel, reusable: true)
        }
        state = .idle
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, case .idle = state {
            closeAfterResponse = true
            let answer = parserError == .headerOverflow
                ? AgentError(.requestHeaderFieldsTooLarge, "Request headers too large", details: "at most 80 KiB of headers")
                : AgentError(.badRequest, "Malformed HTTP request", details: "\(error)")
            respond(.error(answer), context: context)
        } else {
            services.logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
