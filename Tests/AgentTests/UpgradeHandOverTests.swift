import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Proxy

/// What happens to the bytes an upstream sends right behind its `101` while the HTTP
/// decoder is being removed, whichever way its connection ends in that moment. The
/// decoder here is NIO's own, the one the agent runs; only the timing is pinned.
@Suite("The hand-over from HTTP to raw bytes after a 101")
struct UpgradeHandOverTests {
    /// Gets the response parts and, after the hand-over, the raw bytes and events.
    final class Recorder: UpstreamDelegate, ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var parts: [HTTPClientResponsePart] = []
        var raw: [UInt8] = []
        var events: [String] = []

        func upstreamDidReceive(_ part: HTTPClientResponsePart) { parts.append(part) }
        func upstreamDidFinishRead() {}
        func upstreamDidClose(error: Error?) { events.append("upstream closed") }
        func upstreamWritabilityChanged(isWritable: Bool) {}

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            raw += unwrapInboundIn(data).readableBytesView
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { events.append("input closed") }
        }
        func channelInactive(context: ChannelHandlerContext) { events.append("inactive") }
    }

    enum Ending: String, CaseIterable, CustomTestStringConvertible {
        /// The upstream's FIN: input closed, the channel stays open (half-closure).
        case halfClose
        /// The whole connection goes (a unix socket whose peer is gone reports a hang-up).
        case close
        /// A TLS upstream's close_notify (the engine over TCP+TLS, a peer agent): the
        /// input's end comes from the TLS handler in front of the HTTP handlers, not
        /// from the channel.
        case closeNotify
        var testDescription: String { rawValue }
    }

    /// Where an upstream's TLS handler sits, in front of the HTTP handlers. On a
    /// close_notify with half-closure allowed (as the agent's upstreams allow it),
    /// `NIOSSLHandler` hands on what it decrypted, then fires `inputClosed` from its
    /// own place in the pipeline; this does the same.
    final class InFrontOfHTTP: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var context: ChannelHandlerContext?
        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func endInput() { context?.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }

    @Test("bytes that arrive with the 101, or before the decoder has gone, reach the raw handler before the end",
          arguments: Ending.allCases, [true, false])
    func bytesBehindTheHead(ending: Ending, sameRead: Bool) throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let front = InFrontOfHTTP()
        try channel.pipeline.syncOperations.addHandler(front)
        try UpstreamHandler.installHTTP(on: channel.pipeline.syncOperations)
        let upstream = try UpstreamHandler.of(channel)
        let recorder = Recorder()
        upstream.begin(delegate: recorder)
        // The decoder reads a response only to a request it saw go out.
        var request = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/containers/x/attach?stream=1")
        request.headers.add(name: "Connection", value: "Upgrade")
        request.headers.add(name: "Upgrade", value: "tcp")
        upstream.write(.head(request))
        upstream.write(.end(nil))
        upstream.flush()
        let head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        let frame: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 6] + Array("hello\n".utf8)
        var first = channel.allocator.buffer(string: head)
        if sameRead { first.writeBytes(frame) }
        try channel.writeInbound(first)
        #expect(recorder.parts.count == 2, "head and end: \(recorder.parts)")

        // As the relay does on the upstream's `.end`: the raw handler goes in, the codec out.
        try channel.pipeline.syncOperations.addHandler(recorder)
        var handedOver = false
        upstream.removeHTTPHandlers(on: loop).whenComplete { _ in handedOver = true }
        // The removal completes on a later turn of the loop; until then the upstream
        // goes on sending, and its connection ends.
        if !sameRead { try channel.writeInbound(channel.allocator.buffer(bytes: frame)) }
        switch ending {
        case .halfClose:
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .close:
            channel.pipeline.fireChannelInactive()
        case .closeNotify:
            front.endInput()
        }
        loop.run()
        #expect(handedOver)
        #expect(recorder.raw == frame, "the bytes behind the 101 were lost: \(recorder.raw)")
        #expect(recorder.events == [ending == .close ? "inactive" : "input closed"], "\(recorder.events)")
        _ = try? channel.finish()
    }
}
