import Foundation
import Hardware
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy
import Testing
import TestCommands
@testable import Agent

/// The fleet's event stream in this process, with members that misbehave: one that
/// comes and goes faster than any real one (a tick of milliseconds) at an address where
/// nobody listens, whose churn alone must not grow a stream that its client does not
/// read; names that keep changing; and a member (Python's TLS server) that writes times
/// and notices no agent would.
@Suite("The fleet's event stream, against members that misbehave")
struct FleetHostEventsTests {
    static let fast = FleetHostEvents.Timing(tick: .milliseconds(1), firstBackOff: .milliseconds(1), maxBackOff: .milliseconds(1))

    /// A fleet stream on `loop`, started, with this process's own (idle) monitor as the local part.
    static func start(
        membership: @escaping () -> [FleetHostEvents.Peer], request: @escaping (ClusterMember, Int64) -> HTTPRequestHead, since: Int64?,
        generation: @escaping () -> Int = { 0 }, timing: FleetHostEvents.Timing = fast, on loop: EventLoop
    ) throws -> NIOLoopBound<FleetHostEvents> {
        try loop.submit {
            let local = try LocalHostEvents(monitor: HardwareEventMonitor(), nodeName: "here", on: loop)
            let fleet = FleetHostEvents(
                local: local, membership: membership, request: request, since: since, generation: generation, timing: timing, on: loop)
            fleet.start(wake: {})
            return NIOLoopBound(fleet, eventLoop: loop)
        }.wait()
    }

    /// A member at `127.0.0.1:port` and its pool, as the membership gives it.
    static func peer(named name: String, port: Int) throws -> FleetHostEvents.Peer {
        FleetHostEvents.Peer(
            member: ClusterMember(nodeName: name, isManager: false, host: "127.0.0.1", port: port, version: ""),
            pool: UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: try UpstreamTransport.peerTLSContext())))
    }

    /// What the stream has for its client now, as text.
    static func take(_ fleet: NIOLoopBound<FleetHostEvents>, on loop: EventLoop) throws -> String {
        try loop.submit {
            var buffer = ByteBuffer()
            _ = fleet.value.take(into: &buffer)
            return String(buffer: buffer)
        }.wait()
    }

    /// Records the `since` of every member stream the fleet opens.
    final class Opened: Sendable {
        private let state = NIOLockedValueBox<[(name: String, since: Int64)]>([])
        var all: [(name: String, since: Int64)] { state.withLockedValue { $0 } }
        func request(_ member: ClusterMember, _ since: Int64) -> HTTPRequestHead {
            state.withLockedValue { $0.append((member.nodeName, since)) }
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v2/host/events")
            head.headers.add(name: "Host", value: "127.0.0.1")
            return head
        }
    }

    static func waitFor(_ what: String, timeout: TimeInterval = 10, _ done: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while try !done() {
            guard Date() < deadline else {
                Issue.record("timed out waiting for \(what)")
                return false
            }
            usleep(10_000)
        }
        return true
    }

    @Test("a member's times that no Int64 holds, and its own notices, neither crash the stream nor move where it resumes; its overflow is not passed on")
    func hostileMemberLines() throws {
        // What a hostile (or broken) member may write: only the first line is an event at a readable time.
        let lines = [
            #"{"NodeName":"m","Action":"add","Time":"2026-11-30T00:00:00.000000001Z"}"#,
            #"{"NodeName":"m","Action":"add","Time":"9999-12-31T23:59:59.999999999Z"}"#,
            #"{"NodeName":"m","Action":"change","Time":"2262-04-11T23:47:16.854775807Z"}"#,
            #"{"NodeName":"m","Action":"remove","Time":"1969-12-31T23:59:59.000000000Z"}"#,
            #"{"NodeName":"m","Action":"bind","Time":"0000-01-01T00:00:00.000000000Z"}"#,
            #"{"NodeName":"m","Action":"history-incomplete","Time":"2027-01-01T00:00:00.000000000Z","Message":"some are missing"}"#,
            #"{"NodeName":"m","Action":"overflow","Time":"2027-01-01T00:00:00.000000000Z","Message":"reconnect"}"#,
        ]
        let (liar, port, folder) = try MemberLineStreamTests.liar(lines.joined(separator: "\n") + "\n", thenEnd: true)
        defer { liar.stop(); try? FileManager.default.removeItem(at: folder) }
        // The first event's time plus one nanosecond, as Python reads the text.
        let python = try Command.run("python3", ["-c", "import calendar; print(calendar.timegm((2026, 11, 30, 0, 0, 0)) * 10**9 + 2)"])
        let expected = try #require(Int64(python.output.trimmingCharacters(in: .whitespacesAndNewlines)))

        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let peer = try Self.peer(named: "m", port: port)
        let opened = Opened()
        let fleet = try Self.start(membership: { [peer] }, request: opened.request, since: 1_000, on: loop)
        defer { try? loop.submit { fleet.value.stop() }.wait() }

        #expect(Self.waitFor("the member's stream opened again") { opened.all.count >= 2 })
        #expect(opened.all.first?.since == 1_000)
        #expect(opened.all.dropFirst().first?.since == expected, "\(opened.all)")
        var text = ""
        _ = try Self.waitFor("member-reachable") {
            text += try Self.take(fleet, on: loop)
            return text.contains("member-reachable")
        }
        let received = text.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let actions = received.map { $0?["Action"] as? String }
        #expect(actions == ["add", "add", "change", "remove", "bind", "history-incomplete", "member-unreachable", "member-reachable"], "\(text)")
        #expect(try loop.submit { !fleet.value.hasOverflowed }.wait())
    }

    /// A member speaks for itself only. Before, these lines went to the client as they
    /// came: an event for another node, and a gap notice of another member's.
    @Test("a member's line naming another node, or a notice only the fleet writes, ends its stream, named; the line is not passed on",
          arguments: [
            #"{"NodeName":"other","Action":"remove","Time":"2026-11-30T00:00:01.000000000Z","Subsystem":"block","DevPath":"/devices/x"}"#,
            #"{"Action":"remove","Time":"2026-11-30T00:00:01.000000000Z","Subsystem":"block","DevPath":"/devices/x"}"#,
            #"{"NodeName":"m","Action":"member-left","Time":"2026-11-30T00:00:01.000000000Z","Message":"forged"}"#,
          ])
    func linesForOthers(forged: String) throws {
        let lines = [
            #"{"NodeName":"m","Action":"add","Time":"2026-11-30T00:00:00.000000001Z","Subsystem":"usb","DevPath":"/devices/a"}"#,
            forged,
            #"{"NodeName":"m","Action":"add","Time":"2026-11-30T00:00:02.000000000Z","Subsystem":"usb","DevPath":"/devices/b"}"#,
        ]
        let (liar, port, folder) = try MemberLineStreamTests.liar(lines.joined(separator: "\n") + "\n")
        defer { liar.stop(); try? FileManager.default.removeItem(at: folder) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let peer = try Self.peer(named: "m", port: port)
        var timing = Self.fast
        timing.firstBackOff = .seconds(60)
        timing.maxBackOff = .seconds(60)
        let fleet = try Self.start(membership: { [peer] }, request: Opened().request, since: nil, timing: timing, on: loop)
        defer { try? loop.submit { fleet.value.stop() }.wait() }
        var text = ""
        _ = try Self.waitFor("member-unreachable") {
            text += try Self.take(fleet, on: loop)
            return text.contains("member-unreachable")
        }
        let received = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(received.map { $0["DevPath"] as? String ?? $0["Action"] as? String } == ["/devices/a", "member-unreachable"], "\(text)")
        #expect(received.allSatisfy { $0["NodeName"] as? String == "m" }, "\(text)")
        #expect((received.last?["Message"] as? String)?.contains("no agent would") == true, "\(text)")
    }

    /// A member that accepts the connection and then says nothing (no TLS handshake):
    /// before, its stream waited for ever, and its gap was never named.
    @Test("a member that accepts its stream's connection and never answers is named unreachable within the member timeout")
    func memberThatNeverAnswers() throws {
        let port = try AgentProcess.freePort()
        let silent = try Command.spawn("/usr/bin/python3", ["-c", """
            import socket, sys, time
            server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
            held = []
            while True:
                held.append(server.accept())
            """, String(port)])
        defer { silent.stop() }
        for _ in 0..<100 {
            if (try? Command.run("sh", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]).status) == 0 { break }
            usleep(50_000)
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let peer = try Self.peer(named: "m", port: port)
        var timing = Self.fast
        timing.open = .milliseconds(500)
        timing.firstBackOff = .seconds(60)
        timing.maxBackOff = .seconds(60)
        let fleet = try Self.start(membership: { [peer] }, request: Opened().request, since: nil, timing: timing, on: loop)
        defer { try? loop.submit { fleet.value.stop() }.wait() }
        let started = Date()
        var text = ""
        _ = try Self.waitFor("member-unreachable", timeout: 5) {
            text += try Self.take(fleet, on: loop)
            return text.contains("member-unreachable")
        }
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(text.contains("no answer within 500 ms"), "\(text)")
    }

    @Test("when the secrets change, each member's stream is opened again, from just after its last event, and the client is told nothing")
    func secretsChangeReopens() throws {
        let line = #"{"NodeName":"m","Action":"add","Time":"2026-11-30T00:00:00.000000001Z"}"#
        let (liar, port, folder) = try MemberLineStreamTests.liar(line + "\n")
        defer { liar.stop(); try? FileManager.default.removeItem(at: folder) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let peer = try Self.peer(named: "m", port: port)
        let opened = Opened()
        let generation = NIOLockedValueBox(0)
        let fleet = try Self.start(
            membership: { [peer] }, request: opened.request, since: 1_000,
            generation: { generation.withLockedValue { $0 } }, on: loop)
        defer { try? loop.submit { fleet.value.stop() }.wait() }
        func take() throws -> String { try Self.take(fleet, on: loop) }
        var text = ""
        #expect(try Self.waitFor("the member's event") { text += try take(); return !text.isEmpty })
        usleep(100_000)
        #expect(opened.all.count == 1, "\(opened.all)")
        generation.withLockedValue { $0 += 1 }
        #expect(Self.waitFor("the member's stream opened again") { opened.all.count >= 2 })
        #expect(opened.all.dropFirst().first?.since == HardwareEvent.nanoseconds(rfc3339: "2026-11-30T00:00:00.000000001Z").map { $0 + 1 })
        usleep(200_000)
        #expect(opened.all.count == 2, "\(opened.all)")
        text += try take()
        let actions = text.split(separator: "\n").map { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["Action"] as? String }
        #expect(actions == ["add", "add"], "\(text)")
    }

    @Test("a member that joins later starts from when it was taken up, or from the client's since; not from the stream's start")
    func joinerStartsWhenTakenUp() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try AgentProcess.freePort()
        let peer = try Self.peer(named: "late", port: port)
        for clientSince: Int64? in [nil, 1_000] {
            let present = NIOLockedValueBox(false)
            let opened = Opened()
            let began = HardwareEvent.now
            let fleet = try Self.start(
                membership: { present.withLockedValue { $0 } ? [peer] : [] }, request: opened.request,
                since: clientSince, on: loop)
            defer { try? loop.submit { fleet.value.stop() }.wait() }
            usleep(300_000)
            let joined = HardwareEvent.now
            present.withLockedValue { $0 = true }
            #expect(Self.waitFor("the late member's stream") { !opened.all.isEmpty })
            let since = try #require(opened.all.first?.since)
            if let clientSince {
                #expect(since == clientSince)
            } else {
                #expect(since >= joined, "it starts \(Double(joined - since) / 1e9) s before it joined, \(Double(since - began) / 1e9) s after the stream began")
            }
        }
    }

    @Test("where members that left resumed is kept for the last few hundred of them, however many come and go")
    func departuresBounded() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try AgentProcess.freePort()
        let pool = UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: try UpstreamTransport.peerTLSContext()))
        let looks = NIOLockedValueBox(0)
        // A new node name at every look: the one before left.
        let membership = { @Sendable () -> [FleetHostEvents.Peer] in
            let look = looks.withLockedValue { $0 += 1; return $0 }
            return [FleetHostEvents.Peer(member: ClusterMember(nodeName: "node-\(look)", isManager: false, host: "127.0.0.1", port: port, version: ""), pool: pool)]
        }
        let fleet = try Self.start(membership: membership, request: Opened().request, since: nil, on: loop)
        defer { try? loop.submit { fleet.value.stop() }.wait() }
        let limit = FleetHostEvents.rememberedDepartures
        #expect(Self.waitFor("\(2 * limit) looks", timeout: 60) { looks.withLockedValue { $0 } > 2 * limit })
        let kept = try loop.submit {
            var buffer = ByteBuffer()
            _ = fleet.value.take(into: &buffer)
            return fleet.value.rememberedPoints
        }.wait()
        #expect(kept <= limit + 1, "\(kept) members' points kept after \(looks.withLockedValue { $0 }) looks")
    }
    @Test("a member coming and going while the client reads nothing: the stream's own lines stop at their room, then overflow ends it")
    func noticesBounded() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try AgentProcess.freePort()
        let peer = try Self.peer(named: "flapping", port: port)
        let asked = NIOLockedValueBox(0)
        // Present at every other look: it joins, cannot be reached, leaves, joins again.
        let membership = { @Sendable () -> [FleetHostEvents.Peer] in
            asked.withLockedValue { $0 += 1; return $0 % 2 == 1 } ? [peer] : []
        }
        let request = { @Sendable (_: ClusterMember, _: Int64) in HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v2/host/events") }
        let fleet = try Self.start(membership: membership, request: request, since: HardwareEvent.now, on: loop)
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
