import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore

/// Keep-alive connections to one upstream, kept per event loop.
///
/// A client connection borrows an upstream on its own event loop, so both channels'
/// handlers run on one thread and hand bytes to each other without hops or locks.
/// A connection left idle for `idleTimeout` is closed, so that a burst of clients
/// does not leave its upstream connections (and descriptors) behind for good.
///
/// Expiry costs nothing per request: a release only notes the time. Each loop's
/// idle connections are kept oldest first (the newest is handed out again first), and
/// one sweep per loop, armed only while that loop has idle connections, closes the
/// expired ones from the front. (A timer per release would keep one scheduled task
/// per request alive for `idleTimeout`: tens of thousands under load, every one an
/// allocation, and each cancel of any other timer on the loop scans them all.)
///
/// A peer connection in secret mode (`UpstreamTransport.tls`'s `vouchedBy`) was
/// checked under the secrets of its handshake: once they change (`PeerKey.generation`,
/// a rotation that may drop a leaked secret), it is no longer handed out or kept, so
/// the next exchange makes a new one, checked under the secrets now in force.
public final class UpstreamPool: Sendable {
    public let transport: UpstreamTransport
    private let connectTimeout: TimeAmount
    private let maxIdlePerLoop: Int
    private let idleTimeout: TimeAmount
    private let idle = NIOLockedValueBox([ObjectIdentifier: LoopIdle]())
    /// What checks the peer's certificate, in secret mode.
    private let vouching: PeerKey?
    /// Borrowings served by an idle connection, and those that waited for a new one
    /// (and how long): no-ops unless the agent's metrics are on.
    private let reuses: Counter
    private let connectWaits: Timer

    /// One event loop's idle connections, oldest release first.
    private struct LoopIdle {
        var connections: [(channel: Channel, since: NIODeadline)] = []
        var sweepArmed = false
        /// In secret mode, the secrets' generation each open connection was made under.
        var generations: [ObjectIdentifier: Int] = [:]

        /// Keeps `channel` unless `limit` are idle already; says whether it was kept
        /// and whether the loop's sweep must now be armed.
        mutating func keep(_ channel: Channel, since: NIODeadline, atMost limit: Int) -> (kept: Bool, arm: Bool) {
            guard connections.count < limit else { return (false, false) }
            connections.append((channel: channel, since: since))
            defer { sweepArmed = true }
            return (true, !sweepArmed)
        }
    }

    public init(
        transport: UpstreamTransport, connectTimeout: TimeAmount = .seconds(5), maxIdlePerLoop: Int = 64,
        idleTimeout: TimeAmount = .seconds(15)
    ) {
        self.transport = transport
        self.connectTimeout = connectTimeout
        self.maxIdlePerLoop = maxIdlePerLoop
        self.idleTimeout = idleTimeout
        if case .tls(_, _, _, let peerKey?) = transport { vouching = peerKey } else { vouching = nil }
        let upstream = [("upstream", transport.metricsLabel)]
        reuses = Counter(label: "deckhand_upstream_reused_connections_total", dimensions: upstream)
        connectWaits = Timer(label: "deckhand_upstream_connect_wait_seconds", dimensions: upstream)
    }

    /// Connections idling in the pool, on every loop.
    public var idleCount: Int {
        idle.withLockedValue { $0.values.reduce(0) { $0 + $1.connections.count } }
    }

    /// An idle connection on `eventLoop` (the most recently used), or a new one.
    public func acquire(on eventLoop: EventLoop) -> EventLoopFuture<Channel> {
        if let channel = idleChannel(on: eventLoop) { return eventLoop.makeSucceededFuture(channel) }
        return connect(on: eventLoop)
    }

    /// An idle connection on `eventLoop` (the most recently used), if there is one.
    func idleChannel(on eventLoop: EventLoop) -> Channel? {
        let key = ObjectIdentifier(eventLoop)
        let generation = vouching?.generation
        while let (channel, current) = idle.withLockedValue({ idle in
            idle[key]?.connections.popLast().map { ($0.channel, idle[key]?.generations[ObjectIdentifier($0.channel)] == generation) }
        }) {
            guard current else {
                channel.close(promise: nil)
                continue
            }
            if channel.isActive {
                reuses.increment()
                return channel
            }
        }
        return nil
    }

    /// A new connection on `eventLoop`.
    func connect(on eventLoop: EventLoop) -> EventLoopFuture<Channel> {
        let key = ObjectIdentifier(eventLoop)
        let started = NIODeadline.now()
        // Read before the handshake: a rotation during it leaves the connection stale, never current.
        let generation = vouching?.generation
        return transport.connect(on: eventLoop, connectTimeout: connectTimeout).map { [idle, connectWaits] channel in
            connectWaits.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            let id = ObjectIdentifier(channel)
            if let generation { idle.withLockedValue { $0[key, default: LoopIdle()].generations[id] = generation } }
            // Registered once per connection: a pooled connection that the upstream
            // closes while idle leaves the pool by itself.
            channel.closeFuture.whenComplete { _ in
                idle.withLockedValue { idle in
                    idle[key]?.connections.removeAll { $0.channel === channel }
                    idle[key]?.generations[id] = nil
                }
            }
            return channel
        }
    }

    /// Whether `channel` may carry another exchange as it is: in secret mode, it was
    /// checked under the secrets now in force. Call on its loop.
    public func isCurrent(_ channel: Channel) -> Bool {
        guard let vouching else { return true }
        let generation = vouching.generation
        return idle.withLockedValue { $0[ObjectIdentifier(channel.eventLoop)]?.generations[ObjectIdentifier(channel)] == generation }
    }

    /// Gives a connection back after a complete exchange; closes it when it cannot
    /// be reused or the pool for its loop is full.
    public func release(_ channel: Channel, reusable: Bool) {
        guard reusable, channel.isActive else {
            channel.close(promise: nil)
            return
        }
        let eventLoop = channel.eventLoop
        let key = ObjectIdentifier(eventLoop)
        let now = NIODeadline.now()
        let generation = vouching?.generation
        let (kept, arm) = idle.withLockedValue { idle in
            guard idle[key]?.generations[ObjectIdentifier(channel)] == generation else { return (false, false) }
            return idle[key, default: LoopIdle()].keep(channel, since: now, atMost: maxIdlePerLoop)
        }
        guard kept else { return channel.close(promise: nil) }
        if arm { armSweep(on: eventLoop, key: key, at: now + idleTimeout) }
    }

    private func armSweep(on eventLoop: EventLoop, key: ObjectIdentifier, at deadline: NIODeadline) {
        eventLoop.scheduleTask(deadline: deadline) { [self] in sweep(on: eventLoop, key: key) }
    }

    /// Closes the loop's connections idle for `idleTimeout` or longer, and re-arms for
    /// the oldest one left, if any.
    private func sweep(on eventLoop: EventLoop, key: ObjectIdentifier) {
        let now = NIODeadline.now()
        let (expired, next) = idle.withLockedValue { idle -> ([Channel], NIODeadline?) in
            guard var loop = idle.removeValue(forKey: key) else { return ([], nil) }
            defer { idle[key] = loop }
            let count = loop.connections.prefix { $0.since + idleTimeout <= now }.count
            let expired = loop.connections[..<count].map(\.channel)
            loop.connections.removeFirst(count)
            guard let oldest = loop.connections.first else {
                loop.sweepArmed = false
                return (expired, nil)
            }
            return (expired, oldest.since + idleTimeout)
        }
        for channel in expired { channel.close(promise: nil) }
        if let next { armSweep(on: eventLoop, key: key, at: next) }
    }

    /// Closes every idle connection (at shutdown).
    public func closeIdle() {
        let all = idle.withLockedValue { idle -> [Channel] in
            defer {
                for key in idle.keys { idle[key]!.connections.removeAll() }
            }
            return idle.values.flatMap { $0.connections.map(\.channel) }
        }
        for channel in all { channel.close(promise: nil) }
    }
}
