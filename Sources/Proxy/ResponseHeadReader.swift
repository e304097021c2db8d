import NIOCore

/// A response passed on as the upstream wrote it: the head's bytes, then the body's
/// (a chunked body with its chunk framing), then its end. Only for a head
/// `ResponseHeadScan` understood whose body is framed plainly (`Facts.plainBody`); see
/// `UpstreamHandler.begin(delegate:rawResponses:)`.
public enum RawResponsePart {
    case head(RawResponseHead)
    case body(ByteBuffer)
    case end
}

/// Which responses of an exchange come in bytes (`RawResponsePart`s) rather than
/// decoded; see `UpstreamHandler.begin(delegate:rawResponses:)`.
public enum RawResponses: Sendable, Equatable {
    /// None: every response is decoded.
    case never
    /// Those framed plainly (`ResponseHeadScan.Facts.plainBody`), by length or chunked:
    /// for a relay, which writes the bytes on as they came.
    case plain
    /// Those framed plainly by their length: for an exchange that keeps the body, which
    /// is then the bytes that came (a chunked body is left to the decoder to unframe).
    case lengthFramed

    func takes(_ body: RawBody) -> Bool {
        switch (self, body) {
        case (.never, _), (.lengthFramed, .chunked): return false
        case (.plain, _), (.lengthFramed, .length): return true
        }
    }
}

public struct RawResponseHead {
    /// The status line and fields, through the blank line that ends them.
    public var bytes: ByteBuffer
    public var statusCode: Int
    /// How the body bytes that follow (as `.body` parts, then `.end`) are framed.
    public var body: RawBody
    /// Where the `ETag` field's value lies in `bytes` (offsets from its reader index).
    public var entityTag: Range<Int>? = nil

    /// The `ETag` field's value, if the head has one.
    public var entityTagValue: String? {
        entityTag.flatMap { bytes.getString(at: bytes.readerIndex + $0.lowerBound, length: $0.count) }
    }
}

/// Reads each response head in front of NIO's HTTP decoder, in bytes.
///
/// - For an exchange that takes raw responses, a head framed plainly by its length or
///   as chunked (`ResponseHeadScan.Facts.plainBody`) never reaches the decoder: the
///   head, its body and its end go to the `UpstreamHandler` as `RawResponsePart`s, and
///   the relay writes them on as they came. That skips turning every field into strings
///   and back (most of what a small answer like `/_ping` costs) and every chunk into
///   a buffer and a new chunk. `ChunkedBodyScan` finds where a chunked body ends; a
///   body it cannot follow fails the upstream, as a decoding error does.
/// - Every other head (ending with the connection, 1xx and 101, a `HEAD` answer,
///   anything not in the strict form) goes to the decoder, with what follows.
///   Its reason phrase is recorded first: the decoder keeps only the status code (and
///   NIO would then write its own phrase: the engine's `101 UPGRADED` would reach the
///   client as `101 Switching Protocols`).
///
/// One request is in flight per upstream connection, so after a response passed to the
/// decoder nothing is scanned until the next exchange begins; an interim (1xx) head is
/// passed on and the next head read again.
final class ResponseHeadReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Reading a head; `pending` holds its bytes so far when it spans reads.
        case head
        /// Passing a raw response's body on: this many bytes are left.
        case rawBody(remaining: Int64)
        /// Passing a raw response's chunked body on, following its chunks.
        case rawChunks(ChunkedBodyScan)
        /// Everything goes to the decoder until the next exchange.
        case decoder
    }

    private var state = State.head
    private var scan = ResponseHeadScan()
    private var pending: ByteBuffer?
    /// Which responses the exchange takes raw (set when its request went out).
    private var rawAllowed = RawResponses.never
    /// Phrases of heads the decoder has not delivered yet, oldest first.
    private var phrases: CircularBuffer<String> = []
    /// Where raw parts go, and who lets the decoder see the request first.
    weak var upstream: UpstreamHandler?

    /// A new exchange begins on this connection: its response's head comes next.
    func expectResponse(raw: RawResponses) {
        state = .head
        scan = ResponseHeadScan()
        pending = nil
        rawAllowed = raw
        if !phrases.isEmpty { phrases.removeAll(keepingCapacity: true) }
    }

    /// The phrase of the next head the decoder delivers, if it was recorded.
    func nextPhrase() -> String? {
        phrases.popFirst()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .decoder = state {
            return context.fireChannelRead(data)
        }
        var buffer = unwrapInboundIn(data)
        while buffer.readableBytes > 0 {
            switch state {
            case .decoder:
                return context.fireChannelRead(wrapInboundOut(buffer))
            case .rawBody(let remaining):
                let count = Int(min(remaining, Int64(buffer.readableBytes)))
                let body = buffer.readSlice(length: count)!
                state = count == remaining ? .decoder : .rawBody(remaining: remaining - Int64(count))
                upstream?.receiveRaw(.body(body))
                if count == remaining { endRaw(leftover: buffer.readableBytes, context: context) }
                return
            case .rawChunks(var chunks):
                let outcome = buffer.withUnsafeReadableBytes { chunks.scan($0) }
                switch outcome {
                case .more:
                    state = .rawChunks(chunks)
                    upstream?.receiveRaw(.body(buffer))
                case .ended(let count):
                    state = .decoder
                    upstream?.receiveRaw(.body(buffer.readSlice(length: count)!))
                    endRaw(leftover: buffer.readableBytes, context: context)
                case .malformed:
                    state = .decoder
                    upstream?.failRaw(ChunkedBodyError())
                }
                return
            case .head:
                readHead(&buffer, context: context)
            }
        }
    }

    private func readHead(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        var head: ByteBuffer
        if var earlier = pending {
            pending = nil
            earlier.writeImmutableBuffer(buffer)
            head = earlier
        } else {
            head = buffer
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        let outcome = head.withUnsafeReadableBytes { scan.scan($0) }
        switch outcome {
        case .needMore:
            pending = head
        case .unusual:
            record(head)
            pass(head, context: context)
            state = .decoder
        case .complete(let length):
            let facts = scan.facts
            scan = ResponseHeadScan()
            if facts.statusCode < 200 {
                // 1xx and 101: the decoder's. After a 101 the bytes are the hijacked stream.
                record(head)
                rawAllowed = .never
                if facts.statusCode == 101 {
                    state = .decoder
                    return pass(head, context: context)
                }
                pass(head.readSlice(length: length)!, context: context)
                buffer = head
            } else if let body = facts.plainBody, rawAllowed.takes(body) {
                let bytes = head.readSlice(length: length)!
                buffer = head
                switch body {
                case .length(0): state = .decoder
                case .length(let count): state = .rawBody(remaining: count)
                case .chunked: state = .rawChunks(ChunkedBodyScan())
                }
                upstream?.receiveRaw(.head(RawResponseHead(bytes: bytes, statusCode: facts.statusCode, body: body, entityTag: facts.entityTag)))
                if body == .length(0) {
                    endRaw(leftover: buffer.readableBytes, context: context)
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                }
            } else {
                record(head)
                state = .decoder
                pass(head, context: context)
            }
        }
    }

    /// A raw response ended. Bytes after it answer nothing: the connection is not kept.
    private func endRaw(leftover: Int, context: ChannelHandlerContext) {
        if leftover > 0 { upstream?.forbidReuse() }
        upstream?.receiveRaw(.end)
        if leftover > 0 { context.close(promise: nil) }
    }

    /// Hands bytes to the decoder, which first learns of the request they answer.
    private func pass(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        upstream?.primeDecoder()
        context.fireChannelRead(wrapInboundOut(bytes))
    }

    /// Records the phrase of the status line `head` starts with, `HTTP/1.x NNN phrase`.
    private func record(_ head: ByteBuffer) {
        let phrase: String? = head.withUnsafeReadableBytes { bytes in
            var end = 0
            while end < bytes.count, end <= Self.maxLineLength, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            guard end < bytes.count, end <= Self.maxLineLength else { return nil }
            var line = bytes[0..<end]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            guard line.count >= 12, line.starts(with: "HTTP/".utf8) else { return nil }
            let code = line.dropFirst(9).prefix(3)
            guard code.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return String(decoding: line.dropFirst(13), as: UTF8.self)
        }
        if let phrase { phrases.append(phrase) }
    }

    /// A status line longer than this is not recorded (the decoder refuses it anyway).
    static let maxLineLength = 4096
}

@available(*, unavailable)
extension ResponseHeadReader: Sendable {}

/// A chunked body passed on in bytes broke the chunk framing `ChunkedBodyScan` follows.
struct ChunkedBodyError: Error, CustomStringConvertible {
    var description: String { "the upstream's chunked body is malformed" }
}
