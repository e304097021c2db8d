import Logging
import NIOCore
import NIOHTTP1
import Proxy

/// One client connection: performs what its `ConnectionStateMachine` decides, frames
/// each request, lets `RequestIntake` plan it (signature, cluster dispatch, route
/// table), and hands it to the exchange its plan names. The exchanges own everything
/// about their kind of answer; this type holds no per-feature state.
final class ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let services: AgentServices
    /// The HTTP codec handlers in front of this one, removed on a hijack.
    let httpHandlers: [RemovableChannelHandler]
    /// The response encoder, whose context writes bytes on below it (`writeRaw`).
    private let encoder: HTTPResponseEncoder?
    private var belowEncoder: ChannelHandlerContext?
    private(set) var context: ChannelHandlerContext?
    private(set) var machine = ConnectionStateMachine()
    /// The request being served.
    private(set) var exchange: ConnectionExchange?
    /// An idle upstream kept from this client's previous relay for its next.
    var keptUpstream: KeptUpstream?
    private var deadlines: RequestDeadlines?
    private var intake = RequestIntake()
    private var meter: RequestMeter
    /// Held parts are being served (calls made meanwhile return; the loop goes on).
    private var servingHeld = false

    /// How long a connection accepted just before shutdown may take to send its first request.
    static let firstRequestGrace = TimeAmount.seconds(1)
    /// How long a refused connection is read (and dropped) before it closes.
    static let refusalLinger = TimeAmount.milliseconds(500)

    init(services: AgentServices, httpHandlers: [RemovableChannelHandler], encoder: HTTPResponseEncoder? = nil) {
        self.services = services
        self.httpHandlers = httpHandlers
        self.encoder = encoder
        self.meter = RequestMeter(metrics: services.metrics)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let encoder { belowEncoder = try? context.pipeline.syncOperations.context(handler: encoder) }
        deadlines = RequestDeadlines(
            eventLoop: context.eventLoop,
            headerTimeout: .fromSeconds(services.configuration.headerTimeout),
            bodyTimeout: .fromSeconds(services.configuration.bodyTimeout),
            logger: services.logger, peer: context.channel.remoteAddress,
            status: { [weak self] in self?.context == nil ? nil : self?.machine },
            expired: { [weak self] in self?.context?.close(promise: nil) })
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadlines?.cancel()
        self.context = nil
        self.belowEncoder = nil
        // The exchange holds this handler: after a hijack takes the connection over,
        // the two would keep each other for good.
        exchange = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        deadlines?.becameIdle()
        context.fireChannelActive()
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch machine.received(unwrapInboundIn(data), isWritable: context.channel.isWritable) {
        case .serve(let part): serve(part)
        case .held, .ignore: break
        case .cutOff:
            services.logger.debug("closing a connection that pipelined too much without reading", metadata: ["peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"])
            context.close(promise: nil)
        }
    }

    private func serve(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head): begin(head)
        case .body(let body): deadlines?.bodyProgressed(); exchange?.receive(body)
        case .end(let trailers): machine.endRequest(); exchange?.receiveEnd(trailers)
        }
    }

    /// The steps every request head goes through, then the exchange its plan names.
    private func begin(_ requestHead: HTTPRequestHead) {
        guard let context else { return }
        // One framing rule before anything else: what is passed on is framed the way it
        // was read, or not at all.
        let head: HTTPRequestHead
        switch machine.beginRequest(requestHead) {
        case .success(let framed): head = framed
        case .failure(let problem):
            meter.began(.refused)
            // Where its body ends cannot be known: nothing after this head is read as a request.
            refuse(AgentError(.badRequest, "Ambiguous request framing", details: problem.description))
            return closeAfterLinger()
        }
        if machine.requestBodyOpen { deadlines?.bodyProgressed(starting: true) }
        let decision = intake.decide(head, services: services, channel: context.channel)
        if decision.signatureRefused { meter.refusedSignature() } else { meter.began(RouteFamily(route: decision.route, plan: decision.plan)) }
        start(makeExchange(for: decision.plan, head: head, route: decision.route, connection: self))
    }

    /// Makes `exchange` the connection's current one and starts it.
    func start(_ exchange: ConnectionExchange) {
        self.exchange = exchange
        exchange.start()
    }

    // MARK: What exchanges call

    /// Answers a request the agent will not serve and ends the connection (see
    /// `DrainExchange`); `closingAtOnce` for an upload that cannot go on.
    func refuse(_ error: AgentError, closingAtOnce: Bool = false) {
        start(DrainExchange(connection: self, refusing: error, closingAtOnce: closingAtOnce))
    }

    /// A request that could not be served (its upstream failed): the connection goes
    /// on only if the request has ended and nothing else asks for a close.
    func fail(_ error: AgentError) {
        if machine.canAnswerAndGoOn {
            writeResponse(.error(error))
            exchange = nil
            machine.abandonExchange()
            deadlines?.becameIdle()
        } else {
            refuse(error)
        }
        resumeReads()
    }

    /// The exchange is done: its answer is written and the request has ended.
    func finishExchange() {
        exchange = nil
        let action = machine.finishExchange()
        deadlines?.becameIdle()
        switch action {
        case .close: context?.close(promise: nil)
        case .next: resumeReads()
        }
    }

    /// The connection is no longer HTTP (after a `101`).
    func upgraded() {
        machine.upgraded()
        belowEncoder = nil
    }
    func closeAfterThisResponse() { machine.closeAfterThisResponse() }
    func pauseReads() { machine.pauseReads() }

    /// Drops body bytes nobody reads (see `ConnectionStateMachine.droppedBody`).
    func dropBody(_ count: Int, answered: Bool) {
        if machine.droppedBody(count, answered: answered) == .close { context?.close(promise: nil) }
    }

    /// Closes the connection after `refusalLinger`, whatever the client still sends.
    func closeAfterLinger() {
        context?.eventLoop.assumeIsolated().scheduleTask(in: Self.refusalLinger) {
            self.context?.close(promise: nil)
        }
    }

    func resumeReads() {
        deadlines?.bodyProgressed()
        switch machine.resumeReads(whileServingHeld: servingHeld) {
        case .serveHeld: serveHeld()
        case .read: context?.read()
        case .none: break
        }
    }

    /// Serves the held parts that can go now; reading resumes once none are left.
    private func serveHeld() {
        guard !servingHeld, let context else { return }
        servingHeld = true
        while self.context != nil, let part = machine.nextHeld(isWritable: context.channel.isWritable) {
            serve(part)
        }
        servingHeld = false
        if self.context != nil, machine.readAfterServingHeld(isWritable: context.channel.isWritable) {
            context.read()
        }
    }

    /// Writes a whole agent response held in memory (a file body is the `AnswerExchange`'s
    /// to stream after `response.head`).
    func writeResponse(_ response: AgentResponse) {
        write(.head(response.head(closing: machine.closeAfterResponse)))
        if !machine.isHeadRequest, let body = response.bodyBuffer, body.readableBytes > 0 { write(.body(.byteBuffer(body))) }
        write(.end(nil), flush: true)
    }

    func write(_ part: HTTPServerResponsePart, flush: Bool = false) {
        if case .head(let head) = part { meter.answering(head) }
        context?.write(wrapOutboundOut(part), promise: nil)
        if flush { context?.flush() }
    }

    /// Whether `writeRaw` can write: the HTTP encoder is still there.
    var writesRaw: Bool { belowEncoder != nil }

    /// Writes a response's bytes as they are, past the HTTP encoder: a head relayed in
    /// bytes (after `answering(statusCode:)`), then its body.
    func writeRaw(_ bytes: ByteBuffer) {
        belowEncoder?.write(NIOAny(bytes), promise: nil)
    }

    /// A response head relayed in bytes is going out with `statusCode`.
    func answering(statusCode: Int) {
        meter.answering(statusCode: statusCode)
    }

    // MARK: Channel events

    func read(context: ChannelHandlerContext) {
        if machine.readRequested(isWritable: context.channel.isWritable) { context.read() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.readComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        exchange?.writabilityChanged(isWritable: context.channel.isWritable)
        if context.channel.isWritable, machine.isIdle, !machine.readsPaused { serveHeld() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            switch machine.quiesce() {
            case .none: exchange?.quiescing()
            case .closeNow: context.close(promise: nil)
            case .closeIfStillIdleAfterGrace:
                context.eventLoop.assumeIsolated().scheduleTask(in: Self.firstRequestGrace) {
                    if let context = self.context, self.machine.isIdle { context.close(promise: nil) }
                }
            }
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            switch machine.closeInput() {
            case .closeNow: context.close(promise: nil)
            case .tellExchange: exchange?.inputClosed()
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange?.connectionClosed()
        exchange = nil
        machine.closed()
        keptUpstream?.release()
        keptUpstream = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let refusal: AgentError? =
            if let parserError = error as? HTTPParserError { AgentError(parserError) }
            else if error is ByteToMessageDecoderError.PayloadTooLargeError { .headTooLarge }
            else { nil }
        if let refusal, machine.isIdle {
            meter.began(.refused)
            machine.closeAfterThisResponse()
            writeResponse(.error(refusal))
        } else {
            services.logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
