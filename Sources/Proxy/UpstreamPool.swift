import NIOConcurrencyHelpers
import NIOCore

/// Keep-alive connections to one upstream, kept per event loop.
///
/// A client connection borrows an upstream on its own event loop, so both channels'
/// handlers run on one thread and hand bytes to each other without hops or locks.
/// A connection left idle for `idleTimeout` is closed, so that a burst of clients
/// does not leave its upstream connections (and descriptors) behind for good.
public final class UpstreamPool: Sendable {
    public let transport: UpstreamTransport
    private let connectTimeout: TimeAmount
    private let maxIdlePerLoop: Int
    private let idleTimeout: TimeAmount
    private let idle = NIOLockedValueBox(Idle())

    /// Idle connections per event loop, each with the stamp of the release that put
    /// it there (so a timer from an earlier idle spell leaves it alone).
    private struct Idle {
        var byLoop: [ObjectIdentifier: [(channel: Channel, stamp: UInt64)]] = [:]
        var nextStamp: UInt64 = 0
    }

    public init(
        transport: UpstreamTransport, connectTimeout: TimeAmount = .seconds(5), maxIdlePerLoop: Int = 64,
        idleTimeout: TimeAmount = .seconds(15)
    ) {
        self.transport = transport
        self.connectTimeout = connectTimeout
        self.maxIdlePerLoop = maxIdlePerLoop
        self.idleTimeout = idleTimeout
    }

    /// Connections idling in the pool, on every loop.
    public var idleCount: Int {
        idle.withLockedValue { $0.byLoop.values.reduce(0) { $0 + $1.count } }
    }

    /// An idle connection on `eventLoop`, or a new one.
    public func acquire(on eventLoop: EventLoop) -> EventLoopFuture<Channel> {
        let key = ObjectIdentifier(eventLoop)
        while let channel = idle.withLockedValue({ $0.byLoop[key]?.popLast()?.channel }) {
            if channel.isActive { return eventLoop.makeSucceededFuture(channel) }
        }
        return transport.connect(on: eventLoop, connectTimeout: connectTimeout).map { [idle] channel in
            // Registered once per connection: a pooled connection that the upstream
            // closes while idle leaves the pool by itself.
            channel.closeFuture.whenComplete { _ in
                idle.withLockedValue { $0.byLoop[key]?.removeAll { $0.channel === channel } }
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
        let stamp = idle.withLockedValue { idle -> UInt64? in
            guard idle.byLoop[key, default: []].count < maxIdlePerLoop else { return nil }
            idle.nextStamp += 1
            idle.byLoop[key, default: []].append((channel: channel, stamp: idle.nextStamp))
            return idle.nextStamp
        }
        guard let stamp else { return channel.close(promise: nil) }
        channel.eventLoop.scheduleTask(in: idleTimeout) { [idle] in
            let expired = idle.withLockedValue { idle -> Bool in
                guard let index = idle.byLoop[key]?.firstIndex(where: { $0.stamp == stamp }) else { return false }
                idle.byLoop[key]!.remove(at: index)
                return true
            }
            if expired { channel.close(promise: nil) }
        }
    }

    /// Closes every idle connection (at shutdown).
    public func closeIdle() {
        let all = idle.withLockedValue { idle -> [Channel] in
            defer { idle.byLoop = [:] }
            return idle.byLoop.values.flatMap { $0.map(\.channel) }
        }
        for channel in all { channel.close(promise: nil) }
    }
}
