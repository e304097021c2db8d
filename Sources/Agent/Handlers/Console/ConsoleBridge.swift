import NIOCore
import NIOWebSocket

/// The two ends of a console: websocket frames from and to the browser on one
/// channel, the hijacked engine stream on the other. Browser data (binary or text
/// frames) goes to the process's stdin unchanged; its output comes back as text
/// frames of valid UTF-8, as Portainer's terminal (`term.write(e.data)`) needs.
/// Either side closing closes the other: the browser gets a close frame when the
/// process exits, the engine connection is closed when the browser goes away, and
/// the browser gets a "going away" close frame when the agent stops.
/// Pings keep an idle console alive through proxies.
enum ConsoleBridge {
    static let pingInterval = TimeAmount.seconds(25)

    static func makePair() -> (ConsoleWebSocketHandler, ConsoleEngineHandler) {
        let client = ConsoleWebSocketHandler()
        let engine = ConsoleEngineHandler()
        client.engine = engine
        engine.client = client
        return (client, engine)
    }
}

/// The browser's end (after the websocket codec).
final class ConsoleWebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    fileprivate var engine: ConsoleEngineHandler?
    private var context: ChannelHandlerContext?
    private var sentClose = false
    private var readPending = false
    private var pinger: Scheduled<Void>?
    private var output = UTF8StreamDecoder()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        schedulePing(on: context.eventLoop)
    }

    private func schedulePing(on eventLoop: EventLoop) {
        pinger = eventLoop.assumeIsolated().scheduleTask(in: ConsoleBridge.pingInterval) {
            guard let context = self.context, !self.sentClose else { return }
            let ping = WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))
            context.writeAndFlush(self.wrapOutboundOut(ping), promise: nil)
            self.schedulePing(on: eventLoop)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        pinger?.cancel()
        self.context = nil
    }

    // From the engine.
    fileprivate func engineSent(_ bytes: ByteBuffer) {
        guard let context, !sentClose else { return }
        writeText(output.decode(bytes.readableBytesView), context: context)
    }

    private func writeText(_ text: String, context: ChannelHandlerContext) {
        guard !text.isEmpty else { return }
        let data = context.channel.allocator.buffer(string: text)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: data)), promise: nil)
    }

    fileprivate func engineFlushed() { context?.flush() }

    fileprivate func engineEnded() {
        if let context, !sentClose { writeText(output.finish(), context: context) }
        sendClose(code: .normalClosure)
    }

    fileprivate func engineWritable() {
        readIfPending()
    }

    /// Issues the read held back once both the engine and the browser take what is
    /// sent to them.
    private func readIfPending() {
        guard readPending, let context, context.channel.isWritable, engine?.isWritable ?? true else { return }
        readPending = false
        context.read()
    }

    private func sendClose(code: WebSocketErrorCode) {
        guard let context, !sentClose else { return }
        sentClose = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).assumeIsolated().whenComplete { _ in
            self.context?.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text, .continuation:
            engine?.clientSent(frame.unmaskedData)
        case .ping:
            // Answered only while the connection is open; reads stop while the browser
            // takes nothing (see `read`), so unread pongs cannot pile up.
            guard !sentClose else { break }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            engine?.clientClosed()
            sendClose(code: .normalClosure)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        engine?.clientFlushed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // The agent is stopping: the browser learns it from a "going away" close
            // frame rather than a cut connection.
            sendClose(code: .goingAway)
            engine?.clientClosed()
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The browser went away without a close frame (TLS close_notify or FIN).
            engine?.clientClosed()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pinger?.cancel()
        engine?.clientClosed()
        engine = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A protocol error from the frame decoder: say so, then hang up.
        sendClose(code: .protocolError)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            engine?.clientWritable()
            readIfPending()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Reads from the browser only while the engine takes its input and the browser
    /// takes what is sent to it (output, pongs): a browser that sends without reading
    /// is not read either.
    func read(context: ChannelHandlerContext) {
        if (engine?.isWritable ?? true) && context.channel.isWritable { context.read() } else { readPending = true }
    }

    fileprivate var isWritable: Bool { context?.channel.isWritable ?? true }
}

/// The engine's end: the raw hijacked stream.
final class ConsoleEngineHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    fileprivate weak var client: ConsoleWebSocketHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    fileprivate func clientSent(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    fileprivate func clientFlushed() { context?.flush() }

    fileprivate func clientClosed() {
        context?.close(promise: nil)
    }

    fileprivate func clientWritable() {
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    fileprivate var isWritable: Bool { context?.channel.isWritable ?? true }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client?.engineSent(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        client?.engineFlushed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            client?.engineEnded()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client?.engineEnded()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { client?.engineWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if client?.isWritable ?? true { context.read() } else { readPending = true }
    }
}
