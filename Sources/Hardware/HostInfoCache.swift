import Synchronization

/// The last `HostInfo`, kept for a few seconds and dropped as soon as udev reports a
/// change to a device it lists (`HardwareEventMonitor`), so a warm request costs a lock and a hot-plugged disk shows up
/// on the next request. Collection is blocking: call `hostInfo()` off an event loop.
public final class HostInfoCache: Sendable {
    /// A `HostInfo` and which collection it came from: a new collection has a new
    /// number, so whatever is derived from the value (an encoded answer) can be kept
    /// for as long as the number is the same.
    public struct Snapshot: Sendable {
        public let value: HostInfo
        public let collection: UInt64
    }

    private struct State {
        var value: HostInfo?
        var collectedAt: ContinuousClock.Instant = .now
        /// Bumped by every invalidation, so a collection that raced a change is not kept.
        var generation = 0
        /// The number of the collection `value` came from.
        var collection: UInt64 = 0
        /// Who waits for the next invalidation (`notifyOnInvalidation`), by number.
        var waiters: [UInt64: @Sendable () -> Void] = [:]
        var nextWaiter: UInt64 = 0
    }

    /// The most callers that may wait for the next invalidation at once.
    public static let maximumWaiters = 256

    private let state = Mutex(State())
    /// Serialises collections so concurrent cold requests do one inventory, not several.
    private let collecting = Mutex(())
    private let timeToLive: Duration
    private let load: @Sendable () -> HostInfo
    private let subscription = Mutex<HardwareEventSubscription?>(nil)

    /// A cache over `load`, valid for `timeToLive`.
    public init(timeToLive: Duration = .seconds(5), load: @escaping @Sendable () -> HostInfo) {
        self.timeToLive = timeToLive
        self.load = load
    }

    /// A cache over a hardware inventory: `HostInfoCache(inventory: try HardwareInventory(hostRoot: .detect()))`.
    public convenience init(inventory: HardwareInventory, timeToLive: Duration = .seconds(5)) {
        self.init(timeToLive: timeToLive, load: inventory.collect)
    }

    /// Invalidates the cache on every hardware event of `monitor` from now on.
    /// Returns false when udev events are unavailable (the time to live still applies).
    @discardableResult
    public func watchForChanges(_ monitor: HardwareEventMonitor = .shared) -> Bool {
        do {
            let watcher = try monitor.subscribe { [weak self] _ in self?.invalidate() }
            subscription.withLock { $0 = watcher }
            return true
        } catch {
            return false
        }
    }

    /// The cached answer while fresh, else a new collection.
    public func hostInfo() -> HostInfo {
        snapshot().value
    }

    /// `hostInfo()`, with the number of the collection it came from.
    public func snapshot() -> Snapshot {
        if let fresh = freshSnapshot() { return fresh }
        return collecting.withLock { _ in
            // Another caller may have collected while this one waited.
            if let fresh = freshSnapshot() { return fresh }
            let generation = state.withLock { $0.generation }
            let value = load()
            return state.withLock { state in
                state.collection += 1
                if state.generation == generation {
                    state.value = value
                    state.collectedAt = .now
                }
                return Snapshot(value: value, collection: state.collection)
            }
        }
    }

    /// The cached answer while fresh; nil when a collection is due. Never blocks on one,
    /// so it may be called on an event loop.
    public func freshSnapshot() -> Snapshot? {
        state.withLock { state in
            guard let value = state.value, state.collectedAt.duration(to: .now) < timeToLive else { return nil }
            return Snapshot(value: value, collection: state.collection)
        }
    }

    /// Forgets the cached answer; the next `hostInfo()` collects anew. Whoever waits
    /// for this (`notifyOnInvalidation`) is called, on this thread, after the lock.
    public func invalidate() {
        let waiters = state.withLock { state in
            state.value = nil
            state.generation += 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters.values { waiter() }
    }

    /// Calls `body` once, at the next invalidation (a hardware event), on the thread
    /// that invalidates; returns the number to cancel it with, or nil when
    /// `maximumWaiters` already wait (the caller then does not wait).
    public func notifyOnInvalidation(_ body: @escaping @Sendable () -> Void) -> UInt64? {
        state.withLock { state in
            guard state.waiters.count < Self.maximumWaiters else { return nil }
            let number = state.nextWaiter
            state.nextWaiter += 1
            state.waiters[number] = body
            return number
        }
    }

    /// No longer calls what `notifyOnInvalidation` returned `number` for.
    public func cancelNotification(_ number: UInt64) {
        _ = state.withLock { $0.waiters.removeValue(forKey: number) }
    }
}
