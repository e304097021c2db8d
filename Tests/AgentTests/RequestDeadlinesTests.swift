import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Agent

/// The header and body timeouts on a virtual clock: what closes a connection, when,
/// and what never does.
@Suite("Request deadlines")
struct RequestDeadlinesTests {
    final class Probe {
        var machine = ConnectionStateMachine()
        var expiries = 0
    }

    static func deadlines(_ loop: EmbeddedEventLoop, _ probe: Probe) -> RequestDeadlines {
        RequestDeadlines(
            eventLoop: loop, headerTimeout: .seconds(10), bodyTimeout: .seconds(5), logger: Logger(label: "deadline-test"), peer: nil,
            status: { probe.machine }, expired: { probe.expiries += 1 })
    }

    static func post(_ length: Int) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x", headers: ["Content-Length": "\(length)"])
    }

    @Test func anIdleConnectionGetsTheHeaderTimeoutExactly() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        deadlines.becameIdle()
        loop.advanceTime(by: .seconds(9))
        #expect(probe.expiries == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(probe.expiries == 1)
    }

    @Test func theHeaderTimeoutCountsFromTheLatestIdleMoment() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        deadlines.becameIdle()
        loop.advanceTime(by: .seconds(6))
        _ = probe.machine.beginRequest(Self.post(0))
        loop.advanceTime(by: .seconds(2))
        probe.machine.endRequest()
        _ = probe.machine.finishExchange()
        deadlines.becameIdle()
        // The first timer fires at 10 s, sees the connection idle only since 8 s, and re-arms.
        loop.advanceTime(by: .milliseconds(9_900))
        #expect(probe.expiries == 0)
        loop.advanceTime(by: .milliseconds(100))
        #expect(probe.expiries == 1)
    }

    @Test func aBusyConnectionIsNeverClosedForItsHeaders() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        deadlines.becameIdle()
        _ = probe.machine.beginRequest(Self.post(0))
        loop.advanceTime(by: .seconds(60))
        #expect(probe.expiries == 0)
    }

    @Test func aBodyMustKeepArriving() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        _ = probe.machine.beginRequest(Self.post(1000))
        deadlines.bodyProgressed(starting: true)
        // A slow but steady body is unaffected.
        for _ in 0..<10 {
            loop.advanceTime(by: .seconds(4))
            deadlines.bodyProgressed()
        }
        #expect(probe.expiries == 0)
        loop.advanceTime(by: .seconds(5))
        #expect(probe.expiries == 1)
    }

    @Test func timeTheAgentHoldsReadsDoesNotCount() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        _ = probe.machine.beginRequest(Self.post(1000))
        deadlines.bodyProgressed(starting: true)
        probe.machine.pauseReads()
        loop.advanceTime(by: .seconds(30))
        #expect(probe.expiries == 0)
        _ = probe.machine.resumeReads()
        deadlines.bodyProgressed()
        loop.advanceTime(by: .seconds(5))
        #expect(probe.expiries == 1)
    }

    @Test func aBodyThatEndedNeverExpires() {
        let loop = EmbeddedEventLoop()
        let probe = Probe()
        let deadlines = Self.deadlines(loop, probe)
        _ = probe.machine.beginRequest(Self.post(1000))
        deadlines.bodyProgressed(starting: true)
        probe.machine.endRequest()
        loop.advanceTime(by: .seconds(30))
        #expect(probe.expiries == 0)
    }
}
