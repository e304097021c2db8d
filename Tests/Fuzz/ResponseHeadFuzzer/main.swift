import ASCIIText
import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Proxy

// ResponseHeadReader, what lets a plainly framed engine answer pass in bytes. Input: a
// byte choosing the request's method and where the answer is split in two reads, then
// the upstream's answer. Checked against NIO's decoder alone after the same request
// (llhttp, the reading every relay had before): the bytes of an answer passed in bytes
// are, read by NIO, the answer NIO reads at the start of the upstream's (same status,
// fields, body, ending at the same byte); any other answer is decoded exactly as NIO
// alone decodes it; the request goes out once either way; the ETag read in bytes is
// the one NIO reads.

/// One response part, as an exchange sees it.
enum Part: Equatable {
    case rawHead(ByteBuffer, status: Int, entityTag: String?)
    case rawBody(ByteBuffer)
    case rawEnd
    case head(HTTPResponseHead)
    case body(ByteBuffer)
    case end
    case failed
}

final class Parts: UpstreamDelegate {
    var parts: [Part] = []
    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head): parts.append(.head(head))
        case .body(let body): parts.append(.body(body))
        case .end: parts.append(.end)
        }
    }
    func upstreamDidReceive(raw part: RawResponsePart) {
        switch part {
        case .head(let head): parts.append(.rawHead(head.bytes, status: head.statusCode, entityTag: head.entityTagValue))
        case .body(let body): parts.append(.rawBody(body))
        case .end: parts.append(.rawEnd)
        }
    }
    func upstreamDidFinishRead() {}
    func upstreamDidClose(error: Error?) { if error != nil { parts.append(.failed) } }
    func upstreamWritabilityChanged(isWritable: Bool) {}
}

/// Bodies joined, and the head's phrase left out (the reader records the upstream's own;
/// NIO alone writes its standard one).
func normalized(_ parts: [Part]) -> [Part] {
    var out: [Part] = []
    for part in parts {
        switch (out.last, part) {
        case (.body(var a)?, .body(var b)):
            a.writeBuffer(&b)
            out[out.count - 1] = .body(a)
        case (.rawBody(var a)?, .rawBody(var b)):
            a.writeBuffer(&b)
            out[out.count - 1] = .rawBody(a)
        case (_, .head(var head)):
            head.status = HTTPResponseStatus(statusCode: Int(head.status.code))
            out.append(.head(head))
        default:
            out.append(part)
        }
    }
    return out
}

/// NIO's decoder alone after a `method` request, given `answer` in the reads `split` makes
/// (the same reads the reader gets: NIO refuses bytes that come in a read after a 101).
func nioAlone(_ answer: ByteBuffer, split: Int? = nil, method: HTTPMethod) -> [Part] {
    let channel = EmbeddedChannel()
    try! channel.pipeline.syncOperations.addHandlers([
        HTTPRequestEncoder(),
        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward)),
    ])
    try! channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/x")))
    var parts: [Part] = []
    var failed = false
    var reads = [answer]
    if let split, split > 0, split < answer.readableBytes {
        reads = [answer.getSlice(at: answer.readerIndex, length: split)!, answer.getSlice(at: answer.readerIndex + split, length: answer.readableBytes - split)!]
    }
    for read in reads where !failed {
        do { try channel.writeInbound(read) } catch { failed = true }
    }
    while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
        switch part {
        case .head(let head): parts.append(.head(head))
        case .body(let body): parts.append(.body(body))
        case .end: parts.append(.end)
        }
    }
    if failed { parts.append(.failed) }
    _ = try? channel.finish()
    return parts
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size).bytes
    guard let control = input.first else { return 0 }
    let answer = Array(input.dropFirst())
    let method: HTTPMethod = control & 0x80 == 0 ? .GET : .HEAD
    let split = answer.isEmpty ? 0 : Int(control & 0x7F) % (answer.count + 1)

    let channel = EmbeddedChannel()
    // Active, so that a close by the pipeline (bytes after an answer) shows.
    try! channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
    try! UpstreamHandler.installHTTP(on: channel.pipeline.syncOperations)
    let upstream = try! UpstreamHandler.of(channel)
    let seen = Parts()
    upstream.begin(delegate: seen, rawResponses: .plain)
    upstream.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/x")))
    upstream.write(.end(nil))
    upstream.flush()
    for piece in [answer[..<split], answer[split...]] where !piece.isEmpty && channel.isActive {
        _ = try? channel.writeInbound(ByteBuffer(bytes: piece))
    }
    var wire = ByteBuffer()
    while var buffer = try? channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&buffer) }
    require(String(buffer: wire) == "\(method.rawValue) /x HTTP/1.1\r\n\r\n", "the request went out as \(String(buffer: wire).debugDescription)")
    // What came before the end of the stream (NIO alone is read before it too).
    let reader = normalized(seen.parts)
    _ = try? channel.finish()
    // A channel the pipeline closed itself (bytes after an answer) is torn down by a task.
    channel.embeddedEventLoop.run()

    let nio = normalized(nioAlone(ByteBuffer(bytes: answer), split: split, method: method))
    guard case .rawHead(let head, let status, let entityTag) = reader.first else {
        // The reader hands a head over whole, so it may still hold one without its end
        // (after an interim answer too) where NIO alone refused the first bad byte. That
        // is the only difference allowed: the parts before it are the same.
        let refusedSooner = nio.last == .failed && reader == Array(nio.dropLast())
        require(reader == nio || refusedSooner, "decoded as \(reader), NIO alone: \(nio)")
        return 0
    }
    // Passed in bytes: those bytes are one answer as NIO reads it, and NIO reads the
    // same answer at the start of the upstream's bytes.
    require(method == .GET, "an answer to HEAD passed in bytes")
    var raw = head
    for case .rawBody(var body) in reader { raw.writeBuffer(&body) }
    require(answer.starts(with: raw.readableBytesView), "the raw bytes are not the answer's first bytes")
    let nioOfRaw = normalized(nioAlone(raw, method: .GET))
    if let end = nio.firstIndex(of: .end), reader.contains(.rawEnd) {
        require(nioOfRaw == Array(nio[...end]), "in bytes \(nioOfRaw), NIO alone: \(nio)")
    } else if reader.contains(.rawEnd) {
        require(false, "ended in bytes \(reader), NIO alone did not: \(nio)")
    } else if reader.last != .failed {
        // The body goes on: NIO reads no end in the raw bytes either.
        require(!nioOfRaw.contains(.end) && !nio.contains(.end), "unfinished in bytes, NIO alone: \(nio)")
    }
    if case .head(let nioHead)? = nioOfRaw.first {
        require(Int(nioHead.status.code) == status && nioHead.version == .http1_1, "status \(status), NIO: \(nioHead)")
        // The tag a fan-out keeps and sends back (`MemberAnswerCache`) is the one NIO reads,
        // without the white space NIO leaves at its end.
        require(entityTag == nioHead.headers.first(name: "ETag").map(ASCII.trimmingWhitespace), "ETag \(entityTag.debugDescription), NIO: \(nioHead.headers)")
    }
    return 0
}

runLibFuzzer(testOneInput)
