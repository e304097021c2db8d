import NIOCore

/// Holds back the end of a channel's input while the HTTP decoder behind it is being
/// removed after a `101`.
///
/// NIO removes a decoder on a later turn of the event loop, and only then hands on the
/// bytes it still holds (what the engine sent right behind its 101, or the client right
/// behind its request). If the peer's half-close reaches the decoder first, it drops
/// those bytes as it finishes: an engine that writes `101`, one frame and hangs up would
/// lose the frame. Put in front of the decoder before removing it, this gate passes
/// everything else on and releases the half-close once the removal is complete.
public final class InputCloseGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    private var context: ChannelHandlerContext?
    private var heldInputClosed = false

    public init() {}

    /// The decoder is gone: passes on a held half-close, and leaves the pipeline.
    public func release() {
        guard let context else { return }
        if heldInputClosed {
            heldInputClosed = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            heldInputClosed = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension InputCloseGate: Sendable {}
