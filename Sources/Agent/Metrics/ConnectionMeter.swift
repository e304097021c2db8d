import NIOCore

/// First in a client connection's pipeline when metrics are on: counts the bytes the
/// socket reads and writes (TLS records, so hijacked streams and consoles count too)
/// and the connection while it is open. It only looks; every event passes on.
final class ConnectionMeter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let metrics: AgentMetrics
    private var counted = false

    init(metrics: AgentMetrics) {
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            metrics.openConnections.decrement()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        metrics.bytesReceived.increment(by: Int64(unwrapInboundIn(data).readableBytes))
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer): metrics.bytesSent.increment(by: Int64(buffer.readableBytes))
        case .fileRegion(let region): metrics.bytesSent.increment(by: Int64(region.readableBytes))
        }
        context.write(data, promise: promise)
    }

    private func opened() {
        guard !counted else { return }
        counted = true
        metrics.openConnections.increment()
    }
}
