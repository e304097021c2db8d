import Foundation
import Hardware
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy
import Testing
@testable import Agent

/// The fleet's event stream in this process, with a member that comes and goes faster
/// than any real one (a tick of milliseconds) at an address where nobody listens: the
/// membership's churn alone must not grow a stream that its client does not read.
@Suite("The fleet's event stream, for a client that does not read")
struct FleetHostEventsTests {
    @Test("a member coming and going while the client reads nothing: the stream's own lines stop at their room, then overflow ends it")
    func noticesBounded() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try AgentProcess.freePort()
        let member = ClusterMember(nodeName: "flapping", isManager: false, host: "127.0.0.1", port: port, version: "")
        let pool = UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: try UpstreamTransport.peerTLSContext()))
        let asked = NIOLockedValueBox(0)
        // Present at every other look: it joins, cannot be reached, leaves, joins again.
        let membership = { @Sendable () -> [FleetHostEvents.Peer] in
            asked.withLockedValue { $0 += 1; return $0 % 2 == 1 } ? [FleetHostEvents.Peer(member: member, pool: pool)] : []
        }
        let request = { @Sendable (_: ClusterMember, _: Int64) in HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v2/host/events") }
        let timing = FleetHostEvents.Timing(tick: .milliseconds(1), firstBackOff: .milliseconds(1), maxBackOff: .milliseconds(1))
        let fleet = try loop.submit {
            let local = try LocalHostEvents(monitor: HardwareEventMonitor(), nodeName: "here", on: loop)
            let fleet = FleetHostEvents(local: local, membership: membership, request: request, since: HardwareEvent.now, timing: timing, on: loop)
            fleet.start(wake: {})
            return NIOLoopBound(fleet, eventLoop: loop)
        }.wait()
        defer { try? loop.submit { fleet.value.stop() }.wait() }

        let deadline = Date().addingTimeInterval(60)
        while try !loop.submit({ fleet.value.hasOverflowed }).wait() {
            #expect(Date() < deadline, "no overflow after \(asked.withLockedValue { $0 }) looks at the membership")
            guard Date() < deadline else { return }
            usleep(20_000)
        }
        // Many more ticks: nothing more is kept.
        usleep(200_000)
        let (ended, text) = try loop.submit {
            var buffer = ByteBuffer()
            let ended = fleet.value.take(into: &buffer)
            return (ended, String(buffer: buffer))
        }.wait()
        #expect(ended)
        #expect(text.utf8.count <= FleetHostEvents.maxPending + FleetHostEvents.noticeRoom + 1024, "\(text.utf8.count) bytes")
        let lines = text.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.allSatisfy { $0 != nil })
        #expect(lines.last??["Action"] as? String == "overflow")
        #expect(lines.last??["NodeName"] as? String == "here")
        let actions = Set(lines.dropLast().compactMap { $0?["Action"] as? String })
        #expect(actions == ["member-unreachable", "member-left"], "\(actions)")
    }
}
