import NIOCore

/// One side of a raw two-way byte relay, used once a connection is hijacked
/// (`Upgrade: tcp`, 101): whatever one channel reads, the other writes.
///
/// Half-close is honoured: when one side finishes sending (stdin EOF from the
/// client, end of output from the engine), only the other side's output is closed,
/// so the opposite direction keeps flowing. Reads stop while the partner cannot
/// take more, so neither side buffers without bound. When the server quiesces
/// (SIGTERM), both sides are closed at once.
public final class RawRelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var partner: RawRelayHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var inputClosed = false
    private var outputClosed = false

    private init() {}

    /// Two handlers that relay to each other; put one in each channel's pipeline.
    public static func makePair() -> (RawRelayHandler, RawRelayHandler) {
        let first = RawRelayHandler()
        let second = RawRelayHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    // MARK: Calls from the partner

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerInputClosed() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        context.close(mode: .output, promise: nil)
    }

    /// What was relayed is sent on before the close: an upstream that writes its last
    /// bytes and hangs up at once must not lose them.
    private func partnerBecameUnusable() {
        context?.flush()
        context?.close(promise: nil)
    }

    private var partnerIsWritable: Bool {
        partner?.context?.channel.isWritable ?? true
    }

    private func partnerWritabilityChanged(isWritable: Bool) {
        if isWritable, readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Both directions have ended: nothing more can flow, release both channels.
    private func closeIfBothDirectionsDone() {
        guard let partner, inputClosed, partner.inputClosed else { return }
        context?.close(promise: nil)
        partner.context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // A channel torn down without its end reaching this handler must not leave the
        // partner open, relaying to nobody.
        let partner = self.partner
        self.partner = nil
        partner?.partnerBecameUnusable()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerBecameUnusable()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // The server is stopping: a hijacked stream has no end of its own to wait
            // for. What was relayed is flushed, then both sides close (with a TLS
            // close_notify on the client's), as if the engine had ended the stream.
            partner?.partnerFlush()
            partner?.partnerBecameUnusable()
            context.close(promise: nil)
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            partner?.partnerFlush()
            partner?.partnerInputClosed()
            closeIfBothDirectionsDone()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        partner?.partnerWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if partnerIsWritable {
            context.read()
        } else {
            readPending = true
        }
    }
}

@available(*, unavailable)
extension RawRelayHandler: Sendable {}
