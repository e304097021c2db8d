import NIOCore

/// Holds back the end of a channel's input while the HTTP decoder behind it is being
/// removed after a `101`.
///
/// NIO removes a decoder on a later turn of the event loop, and only then hands on the
/// bytes it still holds (what the engine sent right behind its 101, or the client right
/// behind its request). If the end of the input reaches the decoder first, it drops
/// those bytes as it finishes: an engine that writes `101`, one frame and hangs up would
/// lose the frame. The end comes in two forms, and both are held:
/// - a half-close (`inputClosed`), the peer's FIN on a connection that allows it;
/// - the whole connection going (`channelInactive`): a unix socket whose peer has gone
///   reports a hang-up, and the channel closes, maybe before the removal's turn.
///
/// A TLS connection's input ends at its TLS handler too: a close_notify, with
/// half-closure allowed, is an `inputClosed` fired from there. So the gate goes right in
/// front of the HTTP handlers, behind any TLS handler, never first in the pipeline.
///
/// Put in front of the decoder before removing it, this gate passes everything else
/// on, and releases what it held once the removal is complete (a closed channel's
/// handlers are taken out on a turn after the removal's, so the release comes first).
public final class InputCloseGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    private var context: ChannelHandlerContext?
    private var heldInputClosed = false
    private var heldInactive = false

    public init() {}

    /// The decoder is gone: passes on what was held, in the order it came, and leaves
    /// the pipeline.
    public func release() {
        guard let context else { return }
        if heldInputClosed {
            heldInputClosed = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if heldInactive {
            heldInactive = false
            context.fireChannelInactive()
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

    public func channelInactive(context: ChannelHandlerContext) {
        heldInactive = true
    }
}

@available(*, unavailable)
extension InputCloseGate: Sendable {}
