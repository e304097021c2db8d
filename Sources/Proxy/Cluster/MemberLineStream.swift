import NIOCore
import NIOHTTP1

/// One member's newline-delimited JSON stream (its `/v2/host/events`), read for a fleet
/// stream that interleaves every member's lines. Each line is checked before it is
/// passed on: at most `maxLineLength` bytes and exactly one JSON object
/// (`StrictJSON`), so a broken or hostile member cannot put half a line, two lines or
/// an unbounded one into the fleet's stream; such a member is cut off and reported
/// like one that went away.
///
/// Back-pressure: `pause()` stops reading from the member until `resume()`. Everything
/// runs on `eventLoop`, the client connection's.
public final class MemberLineStream: UpstreamDelegate {
    public static let maxLineLength = 64 * 1024

    /// Why a member's stream ended.
    public enum End: Sendable, Equatable, CustomStringConvertible {
        case unreachable(String)
        case refused(HTTPResponseStatus)
        case closed
        case badLine(String)
        /// A line that is one JSON object, but not one this member may send (`reject`).
        case foreignLine(String)

        public var description: String {
            switch self {
            case .unreachable(let error): return "unreachable: \(error)"
            case .refused(let status): return "answered \(status.code) \(status.reasonPhrase)"
            case .closed: return "closed its stream"
            case .badLine(let why): return "sent a line that is not one JSON object: \(why)"
            case .foreignLine(let why): return "sent a line no agent would: \(why)"
            }
        }
    }

    private let onOpen: () -> Void
    private let onLine: (ByteBuffer) -> Void
    private let onEnd: (End) -> Void
    private var upstream: UpstreamHandler?
    private var channel: Channel?
    private var pending = ByteBuffer()
    private var ok = false
    private var ended = false
    private var paused = false

    /// Ends a stream that has not been answered `200` by then (a member that accepts
    /// and then stalls its TLS handshake or its head, or sends 1xx heads for ever).
    private var openDeadline: Scheduled<Void>?

    /// Opens `head` on a new connection from `pool` (never a pooled one: the stream
    /// holds it until it ends). `onOpen` runs when the member has answered `200`,
    /// which it must within `openTimeout` (connection, TLS and head), else the stream
    /// ends as unreachable; `onLine` gets each line without its newline; `onEnd` runs
    /// once, when the stream ends for any reason other than `close()`.
    public init(
        _ head: HTTPRequestHead, pool: UpstreamPool, on eventLoop: EventLoop, openTimeout: TimeAmount = .seconds(10),
        onOpen: @escaping () -> Void = {}, onLine: @escaping (ByteBuffer) -> Void, onEnd: @escaping (End) -> Void
    ) {
        self.onOpen = onOpen
        self.onLine = onLine
        self.onEnd = onEnd
        openDeadline = eventLoop.assumeIsolated().scheduleTask(in: openTimeout) { [weak self] in
            guard let self, !self.ok else { return }
            self.finish(.unreachable("no answer within \(openTimeout.nanoseconds / 1_000_000) ms"))
        }
        pool.transport.connect(on: eventLoop, connectTimeout: .seconds(5)).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                self.finish(.unreachable("\(error)"))
            case .success(let channel):
                guard !self.ended, let upstream = try? UpstreamHandler.of(channel) else {
                    channel.close(promise: nil)
                    return self.finish(.unreachable("no HTTP pipeline"))
                }
                self.channel = channel
                self.upstream = upstream
                upstream.begin(delegate: self)
                if self.paused { upstream.pauseReading() }
                upstream.write(.head(head))
                upstream.write(.end(nil))
                upstream.flush()
            }
        }
    }

    public func pause() {
        paused = true
        upstream?.pauseReading()
    }

    public func resume() {
        paused = false
        upstream?.resumeReading()
    }

    /// Ends the stream without calling `onEnd` (the client went away).
    public func close() {
        ended = true
        release()
    }

    /// Ends the stream for a line `onLine` was given that this member may not send;
    /// `onEnd` gets `.foreignLine(why)`. Called from `onLine`, no further line follows.
    public func reject(_ why: String) {
        finish(.foreignLine(why))
    }

    private func finish(_ end: End) {
        guard !ended else { return }
        ended = true
        release()
        onEnd(end)
    }

    private func release() {
        openDeadline?.cancel()
        openDeadline = nil
        upstream?.delegate = nil
        upstream = nil
        channel?.close(promise: nil)
        channel = nil
    }

    public func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        guard !ended else { return }
        switch part {
        case .head(let head):
            guard head.status.code >= 200 else { return }
            guard head.status == .ok else { return finish(.refused(head.status)) }
            ok = true
            onOpen()
        case .body(var chunk):
            guard ok else { return }
            while let newline = chunk.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - chunk.readerIndex
                guard pending.readableBytes + length <= Self.maxLineLength else { return finish(.badLine("longer than \(Self.maxLineLength) bytes")) }
                var line = chunk.readSlice(length: length)!
                chunk.moveReaderIndex(forwardBy: 1)
                if pending.readableBytes > 0 {
                    pending.writeBuffer(&line)
                    line = pending
                    pending = ByteBuffer()
                }
                guard StrictJSON.isObject(line) else { return finish(.badLine("\(line.readableBytes) bytes")) }
                onLine(line)
                if ended { return }
            }
            guard pending.readableBytes + chunk.readableBytes <= Self.maxLineLength else { return finish(.badLine("longer than \(Self.maxLineLength) bytes")) }
            pending.writeBuffer(&chunk)
        case .end:
            finish(.closed)
        }
    }

    public func upstreamDidFinishRead() {}

    public func upstreamDidClose(error: Error?) {
        finish(error.map { .unreachable("\($0)") } ?? .closed)
    }

    public func upstreamWritabilityChanged(isWritable: Bool) {}
}
