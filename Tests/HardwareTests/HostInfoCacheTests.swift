import Foundation
import Hardware
import Synchronization
import Testing

/// The cache answers from memory while fresh, and collects again after its time to
/// live and after `invalidate()`. That a udev event invalidates it is shown through the
/// agent in a umockdev testbed (HostInfoRouteTests), not on the machine's own disks.
@Suite struct HostInfoCacheTests {
    final class Counter: Sendable {
        let loads = Atomic<Int>(0)
        func load() -> HostInfo {
            let count = loads.add(1, ordering: .relaxed).newValue
            return HostInfo(physicalDisks: [PhysicalDisk(vendor: "load \(count)", size: 0, name: "x", rotational: false, removable: false)])
        }
        var count: Int { loads.load(ordering: .relaxed) }
    }

    @Test func freshAnswerIsReused() {
        let counter = Counter()
        let cache = HostInfoCache(timeToLive: .seconds(60), load: counter.load)
        let first = cache.hostInfo()
        let second = cache.hostInfo()
        #expect(first == second)
        #expect(counter.count == 1)
    }

    @Test func expiredAnswerIsCollectedAgain() throws {
        let counter = Counter()
        let cache = HostInfoCache(timeToLive: .milliseconds(50), load: counter.load)
        _ = cache.hostInfo()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(cache.hostInfo().physicalDisks.first?.vendor == "load 2")
    }

    @Test func invalidateForcesACollection() {
        let counter = Counter()
        let cache = HostInfoCache(timeToLive: .seconds(60), load: counter.load)
        _ = cache.hostInfo()
        cache.invalidate()
        _ = cache.hostInfo()
        #expect(counter.count == 2)
    }

    /// Every watching cache (one per route table: several in one test process, one per
    /// agent) shares the process's one monitor thread: watching costs no thread, no
    /// worker of Dispatch or Swift concurrency, per cache. (It used to cost a Dispatch
    /// thread each, blocked in poll() for the process's life.)
    @Test func watchingCachesShareOneMonitorThread() throws {
        func threads() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0 }
        let counter = Counter()
        var caches: [HostInfoCache] = []
        let before = threads()
        for _ in 0..<32 {
            let cache = HostInfoCache(timeToLive: .seconds(60), load: counter.load)
            try #require(cache.watchForChanges(), "no udev monitor on this machine")
            caches.append(cache)
        }
        let grown = threads() - before
        #expect(grown <= 4, "32 watching caches added \(grown) threads")
        #expect(caches.count == 32)
    }
}
