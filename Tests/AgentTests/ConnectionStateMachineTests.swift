import NIOCore
import NIOHTTP1
import Testing
@testable import Agent

/// Every rule of a connection, with plain values: no channel, no engine.
@Suite("The connection state machine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    static func head(_ method: HTTPMethod = .GET, _ uri: String = "/_ping", _ headers: HTTPHeaders = [:], version: HTTPVersion = .http1_1) -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: version, method: method, uri: uri, headers: headers))
    }

    static func requestHead(_ part: HTTPServerRequestPart) -> HTTPRequestHead {
        guard case .head(let head) = part else { preconditionFailure("not a head") }
        return head
    }

    /// Serves one request from head to finish; returns what finishing decided.
    static func serveWhole(_ machine: inout Machine, _ headers: HTTPHeaders = [:]) -> Machine.FinishAction {
        let part = head(.GET, "/_ping", headers)
        do { let result = machine.received(part, isWritable: true) == .serve(part); #expect(result) }
        _ = machine.beginRequest(requestHead(part))
        do { let result = machine.received(.end(nil), isWritable: true) == .serve(.end(nil)); #expect(result) }
        machine.endRequest()
        return machine.finishExchange()
    }

    @Test func keepAliveRequestsGoOn() {
        var machine = Machine()
        do { let result = Self.serveWhole(&machine); #expect(result == .next) }
        #expect(machine.isIdle)
        do { let result = Self.serveWhole(&machine); #expect(result == .next) }
    }

    @Test func connectionCloseEndsAfterTheAnswer() {
        var machine = Machine()
        do { let result = Self.serveWhole(&machine, ["Connection": "close"]); #expect(result == .close) }
    }

    @Test func http10WithoutKeepAliveEnds() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(version: .http1_0)))
        #expect(machine.closeAfterResponse)
    }

    @Test func upgradeRequestsAreTheLastOnTheConnection() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(.POST, "/containers/x/attach", ["Upgrade": "tcp", "Connection": "Upgrade"])))
        #expect(machine.isUpgradeRequest)
        #expect(machine.closeAfterResponse)
    }

    @Test func afterAnUpgradeRequestNothingIsReadUntilItsAnswer() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(.GET, "/events", ["Upgrade": "tcp", "Connection": "Upgrade"])))
        do { let result = machine.readRequested(isWritable: true); #expect(result, "its body, if any, is read") }
        machine.endRequest()
        do { let result = machine.readRequested(isWritable: true); #expect(!result) }
        do { let result = machine.resumeReads(); #expect(result == .none) }
        do { let result = machine.readAfterServingHeld(isWritable: true); #expect(!result) }
        // A plain request's end does not stop reading.
        var plain = Machine()
        _ = plain.beginRequest(Self.requestHead(Self.head(.GET, "/events")))
        plain.endRequest()
        do { let result = plain.readRequested(isWritable: true); #expect(result) }
    }

    @Test func ambiguousFramingIsRefusedAndCloses() {
        var machine = Machine()
        let result = machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "3", "Transfer-Encoding": "chunked"])))
        guard case .failure = result else { Issue.record("accepted \(result)"); return }
        #expect(machine.closeAfterResponse)
        #expect(!machine.requestBodyOpen)
    }

    @Test func bodyOpenUntilItsEnd() throws {
        var machine = Machine()
        let framed = try machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "5"]))).get()
        #expect(machine.requestBodyOpen)
        #expect(framed.headers["Content-Length"] == ["5"])
        machine.endRequest()
        #expect(!machine.requestBodyOpen)
        #expect(machine.requestEnded)
        _ = machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "0"])))
        #expect(!machine.requestBodyOpen)
    }

    @Test func headWhileBusyIsHeldAndServedInOrder() {
        var machine = Machine()
        let first = Self.head(.GET, "/a"), second = Self.head(.GET, "/b")
        do { let result = machine.received(first, isWritable: true) == .serve(first); #expect(result) }
        _ = machine.beginRequest(Self.requestHead(first))
        do { let result = machine.received(.end(nil), isWritable: true) == .serve(.end(nil)); #expect(result) }
        machine.endRequest()
        do { let result = machine.received(second, isWritable: true); #expect(result == .held) }
        // Everything behind a held head is held too.
        do { let result = machine.received(.end(nil), isWritable: true); #expect(result == .held) }
        // Nothing can go while the first is served, and reading waits.
        do { let result = machine.nextHeld(isWritable: true); #expect(result == nil) }
        do { let result = machine.readRequested(isWritable: true); #expect(!result) }
        do { let result = machine.finishExchange(); #expect(result == .next) }
        do { let result = machine.nextHeld(isWritable: true); #expect(result == second) }
        _ = machine.beginRequest(Self.requestHead(second))
        // The parts behind the head go at once, even while busy.
        do { let result = machine.nextHeld(isWritable: true) == .end(nil); #expect(result) }
        do { let result = machine.nextHeld(isWritable: true); #expect(result == nil) }
        // The read held back is issued now that nothing is held.
        do { let result = machine.readAfterServingHeld(isWritable: true); #expect(result) }
    }

    @Test func aClientThatDoesNotReadIsNotServed() {
        var machine = Machine()
        let part = Self.head()
        // Idle, but the answers so far are not taken: the head waits, and so does reading.
        do { let result = machine.received(part, isWritable: false); #expect(result == .held) }
        do { let result = machine.nextHeld(isWritable: false); #expect(result == nil) }
        do { let result = machine.readRequested(isWritable: false); #expect(!result) }
        do { let result = machine.nextHeld(isWritable: true); #expect(result == part) }
    }

    @Test func readingWaitsBetweenRequestsUntilTheClientReads() {
        var machine = Machine()
        do { let result = machine.readRequested(isWritable: false); #expect(!result) }
        do { let result = machine.readAfterServingHeld(isWritable: false); #expect(!result) }
        do { let result = machine.readAfterServingHeld(isWritable: true); #expect(result) }
        do { let result = machine.readRequested(isWritable: true); #expect(result) }
    }

    @Test func tooManyHeldRequestsCutTheClientOff() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head()))
        for _ in 0..<Machine.maxHeldRequests {
            do { let result = machine.received(Self.head(), isWritable: true); #expect(result == .held) }
        }
        do { let result = machine.received(Self.head(), isWritable: true); #expect(result == .cutOff) }
        do { let result = machine.received(Self.head(), isWritable: true); #expect(result == .ignore) }
        do { let result = machine.received(.end(nil), isWritable: true); #expect(result == .ignore) }
        do { let result = machine.nextHeld(isWritable: true); #expect(result == nil) }
        #expect(!machine.hasHeldParts)
    }

    @Test func tooManyHeldBytesCutTheClientOff() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head()))
        do { let result = machine.received(Self.head(.POST), isWritable: true); #expect(result == .held) }
        let chunk = ByteBuffer(repeating: 0, count: Machine.maxHeldBytes / 2)
        do { let result = machine.received(.body(chunk), isWritable: true); #expect(result == .held) }
        do { let result = machine.received(.body(chunk), isWritable: true); #expect(result == .held) }
        do { let result = machine.received(.body(ByteBuffer(bytes: [1])), isWritable: true); #expect(result == .cutOff) }
    }

    @Test func heldCountsComeDownAsPartsAreServed() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head()))
        // Many rounds of one held request never add up to the limit.
        for _ in 0..<(Machine.maxHeldRequests * 3) {
            do { let result = machine.received(Self.head(), isWritable: true); #expect(result == .held) }
            do { let result = machine.received(.end(nil), isWritable: true); #expect(result == .held) }
            machine.endRequest()
            do { let result = machine.finishExchange(); #expect(result == .next) }
            guard case .head(let head)? = machine.nextHeld(isWritable: true) else { Issue.record("nothing held"); return }
            _ = machine.beginRequest(head)
            do { let result = machine.nextHeld(isWritable: true) == .end(nil); #expect(result) }
        }
        #expect(machine.heldSummary.requests == 0)
    }

    @Test func pausedReadsResumeToTheHeldPartsFirst() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "9"])))
        machine.pauseReads()
        do { let result = machine.readRequested(isWritable: true); #expect(!result) }
        do { let result = machine.resumeReads(); #expect(result == .read) }
        do { let result = machine.resumeReads(); #expect(result == .none) }
        machine.pauseReads()
        do { let result = machine.received(.body(ByteBuffer(bytes: [1])), isWritable: true) == .serve(.body(ByteBuffer(bytes: [1]))); #expect(result) }
        _ = machine.received(Self.head(), isWritable: true)
        do { let result = machine.resumeReads(); #expect(result == .serveHeld) }
        // While the held parts are served, the loop issues the read itself at its end.
        _ = machine.readRequested(isWritable: true)
        do { let result = machine.resumeReads(whileServingHeld: true); #expect(result == .serveHeld) }
    }

    @Test func droppingPastTheLimitClosesOnceAnswered() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "10000000"])))
        do { let result = machine.droppedBody(Machine.dropLimit, answered: false); #expect(result == .none) }
        #expect(!machine.closeAfterResponse)
        do { let result = machine.droppedBody(1, answered: false); #expect(result == .none) }
        #expect(machine.closeAfterResponse)
        #expect(machine.droppedPastLimit)
        // Decided once: later drops change nothing.
        do { let result = machine.droppedBody(1, answered: true); #expect(result == .none) }
        var answered = Machine()
        _ = answered.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "10000000"])))
        do { let result = answered.droppedBody(Machine.dropLimit + 1, answered: true); #expect(result == .close) }
    }

    @Test func quiescingClosesIdleConnectionsAndEndsBusyOnesAfterTheirAnswer() {
        var fresh = Machine()
        do { let result = fresh.quiesce(); #expect(result == .closeIfStillIdleAfterGrace) }
        var used = Machine()
        _ = Self.serveWhole(&used)
        do { let result = used.quiesce(); #expect(result == .closeNow) }
        var busy = Machine()
        _ = busy.beginRequest(Self.requestHead(Self.head()))
        _ = busy.received(Self.head(), isWritable: true)
        do { let result = busy.quiesce(); #expect(result == .none) }
        #expect(!busy.hasHeldParts)
        busy.endRequest()
        do { let result = busy.finishExchange(); #expect(result == .close) }
        // A request that starts after quiescing is the last.
        var late = Machine()
        _ = late.quiesce()
        _ = late.beginRequest(Self.requestHead(Self.head()))
        #expect(late.closeAfterResponse)
    }

    @Test func inputClosedWhileIdleClosesWhileBusyLetsTheAnswerGo() {
        var idle = Machine()
        do { let result = idle.closeInput(); #expect(result == .closeNow) }
        var busy = Machine()
        _ = busy.beginRequest(Self.requestHead(Self.head()))
        do { let result = busy.closeInput(); #expect(result == .tellExchange) }
        busy.endRequest()
        do { let result = busy.finishExchange(); #expect(result == .close) }
    }

    @Test func inputClosedWithHeldRequestsServesThemFirst() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head()))
        _ = machine.received(Self.head(), isWritable: true)
        _ = machine.received(.end(nil), isWritable: true)
        do { let result = machine.closeInput(); #expect(result == .tellExchange) }
        machine.endRequest()
        do { let result = machine.finishExchange(); #expect(result == .next) }
        guard case .head(let head)? = machine.nextHeld(isWritable: true) else { Issue.record("nothing held"); return }
        _ = machine.beginRequest(head)
        _ = machine.nextHeld(isWritable: true)
        machine.endRequest()
        do { let result = machine.finishExchange(); #expect(result == .close) }
    }

    @Test func aFailedExchangeAnswersAndGoesOnOnlyWhenTheRequestEnded() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head()))
        #expect(!machine.canAnswerAndGoOn)
        machine.endRequest()
        #expect(machine.canAnswerAndGoOn)
        machine.abandonExchange()
        #expect(machine.isIdle)
    }

    @Test func closingForgetsEverythingHeld() {
        var machine = Machine()
        _ = machine.beginRequest(Self.requestHead(Self.head(.POST, "/x", ["Content-Length": "4"])))
        _ = machine.received(Self.head(), isWritable: true)
        machine.closed()
        #expect(!machine.hasHeldParts)
        #expect(!machine.requestBodyOpen)
        #expect(machine.isIdle)
    }
}
