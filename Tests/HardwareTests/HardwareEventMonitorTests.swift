import Foundation
import Glibc
import Testing
import TestCommands
@testable import Hardware

/// The monitor against the real kernel's uevents, in a network namespace of a thread's
/// own (uevents of network devices go to their namespace only): veth pairs made there
/// are seen by a monitor opened there, and nothing of them reaches the machine.
@Suite("The udev monitor against the kernel")
struct HardwareEventMonitorTests {
    /// What a subscriber got, and a gate that holds the monitor's thread on the first event.
    final class Subscriber: @unchecked Sendable {
        // Safe: every field is read and written under `lock`.
        private let lock = NSCondition()
        private var received: [HardwareEvent] = []
        private var open = false

        func deliver(_ event: HardwareEvent) {
            lock.lock()
            while !open { lock.wait() }
            received.append(event)
            lock.unlock()
        }

        func release() {
            lock.lock()
            open = true
            lock.broadcast()
            lock.unlock()
        }

        var events: [HardwareEvent] {
            lock.lock()
            defer { lock.unlock() }
            return received
        }
    }

    /// `body` on a new thread in a new network namespace (this process's others stay in theirs).
    static func inOwnNetworkNamespace<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, Error>?
        let thread = Thread {
            outcome = Result {
                // unshare(2) is not in Swift's Glibc module (it needs _GNU_SOURCE).
                typealias Unshare = @convention(c) (Int32) -> Int32
                guard let symbol = dlsym(nil, "unshare") else { throw TestSetupError("no unshare in libc") }
                let cloneNewNet: Int32 = 0x4000_0000
                guard unsafeBitCast(symbol, to: Unshare.self)(cloneNewNet) == 0 else {
                    throw TestSetupError("unshare(CLONE_NEWNET): errno \(errno)")
                }
                return try body()
            }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome!.get()
    }

    /// Makes `count` veth pairs with `ip` in this thread's namespace; how many links
    /// `ip` then lists there.
    static func makeVethPairs(_ count: Int) throws -> Int {
        let batch = (0..<count).map { "link add dh-a\($0) type veth peer name dh-b\($0)\n" }.joined()
        let ip = try Command.run("ip", ["-batch", "-"], input: Data(batch.utf8))
        guard ip.status == 0 else { throw TestSetupError("ip: \(ip.errorOutput)") }
        return try Command.run("ip", ["-o", "link", "show", "type", "veth"]).output.split(separator: "\n").count
    }

    /// A socket with the kernel's smallest receive buffer, and a subscriber that does not
    /// take its first event until 40 veth pairs (80 `add` events) have been made: the
    /// socket overruns. Before, the lost events went unsaid.
    @Test("a monitor whose socket overruns tells its subscribers that events were lost, once the thread reads again")
    func overrunIsToldToSubscribers() throws {
        let (events, made) = try Self.inOwnNetworkNamespace { () -> ([HardwareEvent], Int) in
            let monitor = HardwareEventMonitor(source: .kernel, receiveBufferSize: 1)
            let subscriber = Subscriber()
            let subscription = try monitor.subscribe { subscriber.deliver($0) }
            defer { subscription.cancel() }
            let links = try Self.makeVethPairs(40)
            subscriber.release()
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, !subscriber.events.contains(where: { $0.action == HardwareEvent.eventsLost }) { usleep(10_000) }
            return (subscriber.events, links)
        }
        #expect(made == 80)
        let adds = events.filter { $0.action == "add" && $0.subsystem == "net" }
        #expect(adds.count < made, "every add arrived: the socket did not overrun")
        #expect(events.contains { $0.action == HardwareEvent.eventsLost }, "\(events.map(\.action))")
    }

    /// The same without the small buffer and the held thread: every add arrives and
    /// nothing is said lost (the notice is not noise).
    @Test("a monitor that keeps up tells of no loss, and every add arrives")
    func noLossWhenKeepingUp() throws {
        let (events, made) = try Self.inOwnNetworkNamespace { () -> ([HardwareEvent], Int) in
            let monitor = HardwareEventMonitor(source: .kernel)
            let subscriber = Subscriber()
            subscriber.release()
            let subscription = try monitor.subscribe { subscriber.deliver($0) }
            defer { subscription.cancel() }
            let links = try Self.makeVethPairs(40)
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, subscriber.events.filter({ $0.action == "add" }).count < links { usleep(10_000) }
            return (subscriber.events, links)
        }
        #expect(made == 80)
        #expect(events.filter { $0.action == "add" && $0.subsystem == "net" }.count == made)
        #expect(!events.contains { $0.action == HardwareEvent.eventsLost })
    }
}
