import NIOCore
import NIOHTTP1

/// What an `UpstreamHandler` tells the exchange that currently uses it.
///
/// All calls happen on the upstream channel's event loop, which is the client
/// connection's loop too (upstreams are opened on the loop that asks for them).
public protocol UpstreamDelegate: AnyObject {
    /// A response part arrived (1xx and 101 heads included).
    func upstreamDidReceive(_ part: HTTPClientResponsePart)
    /// A part of a response passed on in bytes; only for an exchange begun with
    /// `rawResponses` (see `UpstreamHandler.begin(delegate:rawResponses:)`).
    func upstreamDidReceive(raw part: RawResponsePart)
    /// The end of one read from the upstream: a good moment to flush downstream.
    func upstreamDidFinishRead()
    /// The upstream went away or failed; `error` is nil for a plain close.
    func upstreamDidClose(error: Error?)
    /// The upstream's write buffer filled up or drained.
    func upstreamWritabilityChanged(isWritable: Bool)
}

extension UpstreamDelegate {
    public func upstreamDidReceive(raw part: RawResponsePart) {
        assertionFailure("a raw response part reached a delegate that did not ask for them")
    }
}

/// The last handler of an upstream HTTP pipeline: hands response parts to the
/// current delegate, forwards request parts, and holds reads while the client side
/// cannot take more (back-pressure in the engine → client direction).
public final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPClientResponsePart
    public typealias OutboundIn = HTTPClientRequestPart
    public typealias OutboundOut = HTTPClientRequestPart

    /// The exchange using this connection; nil while the connection idles in a pool.
    public weak var delegate: UpstreamDelegate?

    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false
    private var httpHandlers: [RemovableChannelHandler] = []
    private var reader: ResponseHeadReader?
    private var primer: DecoderPrimer?
    /// Writes from here go on below the response decoder, which does not see them.
    private var belowDecoder: ChannelHandlerContext?
    /// The request in flight, when the decoder has not seen it (a raw exchange).
    private var unobservedHead: HTTPRequestHead?
    /// Which responses the exchange in flight takes raw.
    private var rawResponses = RawResponses.never

    /// The status the upstream sent with the head just delivered: its own reason
    /// phrase with the code, for a relay that passes the status line on as it came.
    public private(set) var receivedStatus: HTTPResponseStatus?

    /// True once a complete response arrived and the upstream did not ask to close.
    public private(set) var isReusable = false
    private var responseKeepAlive = true
    /// The method of the request in flight: an answer to `HEAD` has no body.
    private var requestMethod = HTTPMethod.GET
    /// `write` was called since the last `flush`.
    private var unflushed = false

    init() {}

    /// Adds the HTTP client codec and an `UpstreamHandler` to an upstream pipeline.
    /// Framing headers are left exactly as the client sent them.
    static func installHTTP(on pipeline: ChannelPipeline.SynchronousOperations) throws {
        var encoderConfiguration = HTTPRequestEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let encoder = HTTPRequestEncoder(configuration: encoderConfiguration)
        let decoder = HTTPDecoding.responseDecoder()
        let reader = ResponseHeadReader()
        let primer = DecoderPrimer()
        let handler = UpstreamHandler()
        handler.httpHandlers = [reader, encoder, primer, decoder]
        handler.reader = reader
        handler.primer = primer
        reader.upstream = handler
        try pipeline.addHandlers([reader, encoder, primer, decoder, handler])
        handler.belowDecoder = try pipeline.context(handler: decoder)
    }

    /// The handler of a channel made by `UpstreamTransport.connect`. Call on its loop.
    public static func of(_ channel: Channel) throws -> UpstreamHandler {
        try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
    }

    // MARK: Used by the exchange

    public var isWritable: Bool { context?.channel.isWritable ?? false }
    public var channel: Channel? { context?.channel }

    /// Starts a new exchange on this connection. With `rawResponses` `.plain`, a
    /// response whose head `ResponseHeadScan` understands and frames plainly
    /// (`Facts.plainBody`: by its length, or chunked) comes as `RawResponsePart`s, in
    /// the bytes the upstream wrote, and never as decoded parts; with `.lengthFramed`,
    /// only such a response framed by its length does. Any other response comes
    /// decoded, as with `.never`. Not for `HEAD` (nor `CONNECT`), whose answers only
    /// the decoder frames right: their exchanges get decoded parts whatever is asked.
    public func begin(delegate: UpstreamDelegate, rawResponses: RawResponses = .never) {
        self.delegate = delegate
        self.isReusable = false
        self.responseKeepAlive = true
        self.rawResponses = rawResponses
        self.unobservedHead = nil
        self.reader?.expectResponse(raw: .never)
        self.resumeReading()
    }

    public func write(_ part: HTTPClientRequestPart) {
        guard let context else { return }
        if case .head(let head) = part {
            requestMethod = head.method
            // NIO's response decoder frames each answer by the request it saw go out (an
            // answer to HEAD has no body), and refuses an answer to none. A request whose
            // answer may pass by it in bytes goes out below it; `primeDecoder` shows it
            // the request if the answer turns out to be its after all.
            if rawResponses != .never, head.method != .HEAD, head.method != .CONNECT, let belowDecoder {
                unobservedHead = head
                reader?.expectResponse(raw: rawResponses)
                belowDecoder.write(self.wrapOutboundOut(part), promise: nil)
                unflushed = true
                return
            }
        }
        context.write(self.wrapOutboundOut(part), promise: nil)
        unflushed = true
    }

    /// Lets the response decoder see the request in flight, if it has not: its answer
    /// is going to the decoder. The request went out already, so `DecoderPrimer` drops
    /// this copy after the decoder has seen it.
    func primeDecoder() {
        guard let head = unobservedHead, let context, let primer else { return }
        unobservedHead = nil
        primer.dropNextWrite()
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
    }

    /// A raw response part from the reader (see `begin(delegate:rawResponses:)`).
    func receiveRaw(_ part: RawResponsePart) {
        switch part {
        case .head:
            // By `plainBody`: HTTP/1.1 without `Connection`, framed by its length or chunks.
            responseKeepAlive = true
            receivedStatus = nil
        case .end:
            isReusable = responseKeepAlive
        case .body:
            break
        }
        if let delegate {
            delegate.upstreamDidReceive(raw: part)
        } else {
            context?.close(promise: nil)
        }
    }

    /// A body passed in bytes broke its framing: the exchange fails as on a decoding error.
    func failRaw(_ error: Error) {
        guard let context else { return }
        errorCaught(context: context, error: error)
    }

    /// The upstream sent more than the answer: the connection is not used again.
    func forbidReuse() {
        responseKeepAlive = false
        isReusable = false
    }

    /// Flushes what `write` wrote since the last flush; with nothing new it returns (a
    /// relay asks after each part and at each read's end: most would flush nothing).
    public func flush() {
        guard unflushed else { return }
        unflushed = false
        context?.flush()
    }

    /// Half-closes the connection towards the upstream (the client's stdin ended).
    public func closeOutput() {
        context?.close(mode: .output, promise: nil)
    }

    public func close() {
        context?.close(promise: nil)
    }

    public func pauseReading() {
        readsPaused = true
    }

    public func resumeReading() {
        guard readsPaused || readPending else { return }
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Strips the HTTP codec after a `101` so the connection carries raw bytes.
    /// Bytes the engine sent right after its 101 are forwarded to whatever handler
    /// follows when the returned future completes (outside any read, so flush them
    /// then), so add the raw relay handler before calling this.
    public func removeHTTPHandlers(on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        guard let context else { return eventLoop.makeSucceededVoidFuture() }
        let pipeline = context.pipeline.syncOperations
        // Right in front of the HTTP handlers, behind a TLS handler if there is one: a
        // TLS upstream's close_notify ends the input from there, not from the channel,
        // and would pass a gate put first.
        let gate = InputCloseGate()
        let position: ChannelPipeline.SynchronousOperations.Position = httpHandlers.first.map { .before($0) } ?? .first
        guard (try? pipeline.addHandler(gate, position: position)) != nil else {
            context.close(promise: nil)
            return eventLoop.makeSucceededVoidFuture()
        }
        let removals = httpHandlers.map { pipeline.removeHandler($0) }
        httpHandlers = []
        belowDecoder = nil
        pipeline.removeHandler(context: context, promise: nil)
        let removed = EventLoopFuture.andAllComplete(removals, on: eventLoop)
        removed.assumeIsolated().whenComplete { _ in gate.release() }
        return removed
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.belowDecoder = nil
        self.delegate = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .head(let head) = part {
            let phrase = reader?.nextPhrase()
            receivedStatus = phrase.map { $0 == head.status.reasonPhrase ? head.status : .custom(code: head.status.code, reasonPhrase: $0) }
                ?? head.status
        }
        switch part {
        case .head(let head) where head.status.code >= 200 || head.status.code == 101:
            // Reusable when the upstream keeps the connection and the answer ends by its
            // framing, not with the connection (a body without length or chunking).
            let framed = MessageFraming.isBodiless(head.status, answering: requestMethod)
                || (try? MessageFraming.responseBody(of: head).get()).map { $0 != .none } == true
            responseKeepAlive = framed && MessageFraming.keepsAlive(head.headers, version: head.version)
        case .end:
            isReusable = responseKeepAlive
        default:
            break
        }
        if let delegate {
            delegate.upstreamDidReceive(part)
        } else {
            // Nobody asked: an idle connection must not talk. Drop it.
            context.close(promise: nil)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamDidFinishRead()
        context.fireChannelReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        isReusable = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamDidClose(error: nil)
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // An HTTP upstream half-closing mid-exchange cannot finish it.
            isReusable = false
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        isReusable = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamDidClose(error: error)
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// Sits between the request encoder and the response decoder of an upstream pipeline,
/// and drops the one write it is told to: the copy of a request that `primeDecoder`
/// writes only so that the decoder sees it (the request itself went out already).
final class DecoderPrimer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var dropsNext = false

    func dropNextWrite() {
        dropsNext = true
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if dropsNext {
            dropsNext = false
            promise?.succeed()
            return
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension DecoderPrimer: Sendable {}
