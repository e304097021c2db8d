import NIOConcurrencyHelpers
import NIOCore

/// Keep-alive connections to one upstream, kept per event loop.
///
/// A client connection borrows an upstream on its own event loop, so both channels'
/// handlers run on one thread and hand bytes to each other without hops or locks.
public final class UpstreamPool: Sendable {
    public let transport: UpstreamTransport
    private let connectTimeout: TimeAmount
    private let maxIdlePerLoop: Int
    private let idle = NIOLockedValueBox<[ObjectIdentifier: [Channel]]>([:])

    public init(transport: UpstreamTransport, connectTimeout: TimeAmount = .seconds(5), maxIdlePerLoop: Int = 64) {
        self.transport = transport
        self.connectTimeout = connectTimeout
        self.maxIdlePerLoop = maxIdlePerLoop
    }

    /// An idle connection on `eventLoop`, or a new one.
    public func acquire(on eventLoop: EventLoop) -> EventLoopFuture<Channel> {
        let key = ObjectIdentifier(eventLoop)
        while let channel = idle.withLockedValue({ $0[key]?.popLast() }) {
            if channel.isActive { return eventLoop.makeSucceededFuture(channel) }
        }
        return transport.connect(on: eventLoop, connectTimeout: connectTimeout).map { [idle] channel in
            // Registered once per connection: a pooled connection that the upstream
            // closes while idle leaves the pool by itself.
            channel.closeFuture.whenComplete { _ in
                idle.withLockedValue { $0[key]?.removeAll { $0 === channel } }
            }
            return channel
        }
    }

    /// Gives a connection back after a complete exchange; closes it when it cannot
    /// be reused or the pool for its loop is full.
    public func release(_ channel: Channel, reusable: Bool) {
        guard reusable, channel.isActive else {
            channel.close(promise: nil)
            return
        }
        let key = ObjectIdentifier(channel.eventLoop)
        let kept = idle.withLockedValue { idle -> Bool in
            var list = idle[key, default: []]
            guard list.count < maxIdlePerLoop else { return false }
            list.append(channel)
            idle[key] = list
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    /// Closes every idle connection (at shutdown).
    public func closeIdle() {
        let all = idle.withLockedValue { idle -> [Channel] in
            defer { idle = [:] }
            return idle.values.flatMap { $0 }
        }
        for channel in all { channel.close(promise: nil) }
    }
}
