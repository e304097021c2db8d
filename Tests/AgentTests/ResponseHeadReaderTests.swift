import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Proxy
import Testing

/// What an exchange saw of one response on an upstream connection.
private enum Seen: Equatable, CustomStringConvertible {
    case rawHead(String, status: Int, body: RawBody)
    case rawBody(String)
    case rawEnd
    case head(status: Int, headers: [String])
    case body(String)
    case end
    case closed

    var description: String {
        switch self {
        case .rawHead(let bytes, let status, let body): "rawHead(\(status), \(body), \(bytes.debugDescription))"
        case .rawBody(let bytes): "rawBody(\(bytes.debugDescription))"
        case .rawEnd: "rawEnd"
        case .head(let status, let headers): "head(\(status), \(headers))"
        case .body(let bytes): "body(\(bytes.debugDescription))"
        case .end: "end"
        case .closed: "closed"
        }
    }
}

private final class SeenParts: UpstreamDelegate {
    var seen: [Seen] = []

    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head): seen.append(.head(status: Int(head.status.code), headers: head.headers.map { "\($0.name): \($0.value)" }))
        case .body(let body): seen.append(.body(String(buffer: body)))
        case .end: seen.append(.end)
        }
    }

    func upstreamDidReceive(raw part: RawResponsePart) {
        switch part {
        case .head(let head): seen.append(.rawHead(String(buffer: head.bytes), status: head.statusCode, body: head.body))
        case .body(let body): seen.append(.rawBody(String(buffer: body)))
        case .end: seen.append(.rawEnd)
        }
    }

    func upstreamDidFinishRead() {}
    func upstreamDidClose(error: Error?) { seen.append(.closed) }
    func upstreamWritabilityChanged(isWritable: Bool) {}
}

/// `ResponseHeadReader` in the upstream pipeline `UpstreamHandler.installHTTP` makes: which
/// answers pass in bytes, and that every other one is decoded exactly as NIO's decoder
/// alone decodes it (the independent reading: llhttp, as every relay did before).
@Suite("Response heads read in bytes")
struct ResponseHeadReaderTests {
    /// The upstream pipeline, after `method` went out on it for an exchange that takes raw responses.
    private static func upstream(_ method: HTTPMethod = .GET, raw: RawResponses = .plain) throws -> (EmbeddedChannel, UpstreamHandler, SeenParts) {
        let channel = EmbeddedChannel()
        try UpstreamHandler.installHTTP(on: channel.pipeline.syncOperations)
        let upstream = try UpstreamHandler.of(channel)
        let parts = SeenParts()
        try begin(upstream, method, parts, raw: raw)
        return (channel, upstream, parts)
    }

    private static func begin(_ upstream: UpstreamHandler, _ method: HTTPMethod, _ parts: SeenParts, raw: RawResponses = .plain) throws {
        upstream.begin(delegate: parts, rawResponses: raw)
        upstream.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/x", headers: ["Host": "engine"])))
        upstream.write(.end(nil))
        upstream.flush()
    }

    /// Everything the pipeline wrote towards the upstream.
    private static func wire(_ channel: EmbeddedChannel) throws -> String {
        var wire = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { wire += String(buffer: buffer) }
        return wire
    }

    /// NIO's decoder alone, after a `method` request: the parts it makes of `text`.
    private static func decodedByNIO(_ text: String, method: HTTPMethod = .GET) throws -> [Seen] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            HTTPRequestEncoder(),
            ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward)),
        ])
        try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/x")))
        var seen: [Seen] = []
        do {
            try channel.writeInbound(ByteBuffer(string: text))
        } catch {
            seen.append(.closed)
        }
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let head): seen.append(.head(status: Int(head.status.code), headers: head.headers.map { "\($0.name): \($0.value)" }))
            case .body(let body): seen.append(.body(String(buffer: body)))
            case .end: seen.append(.end)
            }
        }
        return joined(seen)
    }

    /// Feeds `text` in two reads split at `split`; what the exchange saw, body reads joined.
    private static func read(
        _ text: String, split: Int, method: HTTPMethod = .GET, raw: RawResponses = .plain
    ) throws -> (seen: [Seen], reusable: Bool, wire: String) {
        let (channel, upstream, parts) = try upstream(method, raw: raw)
        let bytes = Array(text.utf8)
        for piece in [bytes[..<split], bytes[split...]] where !piece.isEmpty {
            do { try channel.writeInbound(ByteBuffer(bytes: piece)) } catch { parts.seen.append(.closed) }
        }
        return (joined(parts.seen), upstream.isReusable, try wire(channel))
    }

    /// Consecutive bodies as one: how reads split a body is not what is checked.
    private static func joined(_ seen: [Seen]) -> [Seen] {
        var joined: [Seen] = []
        for item in seen {
            switch (joined.last, item) {
            case (.body(let a)?, .body(let b)): joined[joined.count - 1] = .body(a + b)
            case (.rawBody(let a)?, .rawBody(let b)): joined[joined.count - 1] = .rawBody(a + b)
            case (.closed?, .closed): continue
            default: joined.append(item)
            }
        }
        return joined
    }

    static let ping = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"

    @Test("a head framed by its length alone passes in bytes, whatever the reads; the request goes out once")
    func plain() throws {
        let text = Self.ping + "OK"
        for split in 0...text.utf8.count {
            let (seen, reusable, wire) = try Self.read(text, split: split)
            #expect(seen == [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd], "split \(split)")
            #expect(reusable)
            #expect(wire == "GET /x HTTP/1.1\r\nHost: engine\r\n\r\n")
        }
        // NIO reads the same head and body.
        #expect(try Self.decodedByNIO(text) == [.head(status: 200, headers: ["Api-Version: 1.41", "Content-Length: 2", "Content-Type: text/plain; charset=utf-8"]), .body("OK"), .end])
    }

    @Test("204 and 304 have no body, whatever their length says", arguments: [204, 304])
    func bodiless(status: Int) throws {
        let head = "HTTP/1.1 \(status) X\r\nContent-Length: 5\r\n\r\n"
        let (seen, reusable, _) = try Self.read(head, split: 3)
        #expect(seen == [.rawHead(head, status: status, body: .length(0)), .rawEnd])
        #expect(reusable)
        #expect(try Self.decodedByNIO(head) == [.head(status: status, headers: ["Content-Length: 5"]), .end])
    }

    /// Answers only the decoder frames, or that are not in the strict form: each is
    /// decoded as NIO alone decodes it, and the request goes out once.
    @Test("every other answer is NIO's, decoded as NIO alone decodes it",
          arguments: [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.1 200 OK\nContent-Length: 2\n\nOK",
            "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
            "HTTP/1.1 404 Not Found\r\nContent-Length: abc\r\n\r\n",
            // The fuzzer's finding: no body follows a 204, but NIO still refuses a length that is not a number.
            "HTTP/1.1 204 No Content\r\nContent-Length: 11.x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nOK",
          ])
    func decoded(text: String) throws {
        let nio = try Self.decodedByNIO(text)
        for split in [0, 1, 9, 17, text.utf8.count / 2, text.utf8.count - 1, text.utf8.count] {
            let (seen, _, wire) = try Self.read(text, split: split)
            #expect(seen == nio, "split \(split): \(seen) against NIO's \(nio)")
            #expect(wire == "GET /x HTTP/1.1\r\nHost: engine\r\n\r\n", "split \(split)")
        }
    }

    static let listHead = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    static let listBody = "7\r\n[{\"a\":1\r\nA\r\n},{\"b\":22}\r\n2\r\n]\n\r\n0\r\n\r\n"

    @Test("a chunked body passes in bytes, chunk framing and all, whatever the reads; NIO reads those bytes as it reads the answer")
    func chunked() throws {
        let text = Self.listHead + Self.listBody
        for split in 0...text.utf8.count {
            let (seen, reusable, wire) = try Self.read(text, split: split)
            #expect(seen == [.rawHead(Self.listHead, status: 200, body: .chunked), .rawBody(Self.listBody), .rawEnd], "split \(split)")
            #expect(reusable)
            #expect(wire == "GET /x HTTP/1.1\r\nHost: engine\r\n\r\n")
        }
        #expect(try Self.decodedByNIO(text) == [
            .head(status: 200, headers: ["Content-Type: application/json", "Transfer-Encoding: chunked"]), .body("[{\"a\":1},{\"b\":22}]\n"), .end,
        ])
    }

    /// An exchange that keeps the body (`UpstreamPool.collect`'s `statusOnly`) takes only
    /// answers framed by their length raw: their bytes are the body. A chunked one is
    /// NIO's to unframe.
    @Test("an exchange taking only length-framed answers raw gets a chunked one decoded, as NIO alone decodes it")
    func lengthFramedOnly() throws {
        let chunked = Self.listHead + Self.listBody
        let plain = Self.ping + "OK"
        for split in 0...chunked.utf8.count {
            let (seen, reusable, wire) = try Self.read(chunked, split: split, raw: .lengthFramed)
            #expect(seen == (try Self.decodedByNIO(chunked)), "split \(split)")
            #expect(reusable)
            #expect(wire == "GET /x HTTP/1.1\r\nHost: engine\r\n\r\n", "split \(split): the request goes out once")
        }
        for split in 0...plain.utf8.count {
            let (seen, reusable, _) = try Self.read(plain, split: split, raw: .lengthFramed)
            #expect(seen == [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd], "split \(split)")
            #expect(reusable)
        }
        // Nothing raw when none is asked for.
        #expect(try Self.read(plain, split: 3, raw: .never).seen == (try Self.decodedByNIO(plain)))
    }

    /// Chunk framing `ChunkedBodyScan` does not follow (NIO accepts the first two): the
    /// answer fails, as a decoding error fails it, and the connection is not kept.
    @Test("a chunked body in bytes that breaks its framing fails the upstream",
          arguments: ["5;ext=1\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\nX-Late: 1\r\n\r\n", "5\r\nhelloX\r\n", "g\r\n", "\r\n",
                      "1000000000000000\r\n", "5\nhello\r\n"])
    func brokenChunks(body: String) throws {
        let (seen, reusable, _) = try Self.read(Self.listHead + body, split: Self.listHead.utf8.count)
        #expect(seen.first == .rawHead(Self.listHead, status: 200, body: .chunked))
        #expect(seen.last == .closed)
        #expect(!seen.contains(.rawEnd))
        #expect(!reusable)
    }

    @Test("an answer to HEAD is the decoder's: its length describes no body")
    func head() throws {
        let (seen, reusable, _) = try Self.read(Self.ping, split: 5, method: .HEAD)
        #expect(seen == (try Self.decodedByNIO(Self.ping, method: .HEAD)))
        #expect(seen.last == .end)
        #expect(reusable)
    }

    @Test("bytes after a raw answer answer nothing: the connection is closed, not kept")
    func leftover() throws {
        let (seen, reusable, _) = try Self.read(Self.ping + "OKHTTP/1.1 200 OK\r\n", split: 10)
        #expect(seen.prefix(3) == [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd])
        #expect(!reusable)
    }

    /// The decoder frames each answer by the request it saw go out. Raw exchanges' requests
    /// go out below it, so after several of them it must still pair a `HEAD`'s answer
    /// with the `HEAD`, and see a request for an answer handed to it mid-way.
    @Test("raw, HEAD and chunked answers in turn on one connection keep their framing")
    func alternating() throws {
        let (channel, upstream, parts) = try Self.upstream()
        // Announced trailers: the decoder's.
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 1\r\n\r\n"
        let exchanges: [(HTTPMethod, String, [Seen])] = [
            (.GET, Self.ping + "OK", [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd]),
            (.GET, Self.ping + "OK", [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd]),
            (.HEAD, Self.ping, try Self.decodedByNIO(Self.ping, method: .HEAD)),
            (.GET, chunked, try Self.decodedByNIO(chunked)),
            (.GET, Self.ping + "OK", [.rawHead(Self.ping, status: 200, body: .length(2)), .rawBody("OK"), .rawEnd]),
            (.HEAD, Self.ping, try Self.decodedByNIO(Self.ping, method: .HEAD)),
            (.GET, chunked, try Self.decodedByNIO(chunked)),
        ]
        for (index, (method, answer, expected)) in exchanges.enumerated() {
            if index > 0 { try Self.begin(upstream, method, parts) }
            parts.seen = []
            try channel.writeInbound(ByteBuffer(string: answer))
            #expect(Self.joined(parts.seen) == expected, "exchange \(index), \(method)")
            #expect(upstream.isReusable, "exchange \(index), \(method)")
            #expect(try Self.wire(channel) == "\(method.rawValue) /x HTTP/1.1\r\nHost: engine\r\n\r\n", "exchange \(index)")
        }
    }

    @Test("a head longer than the scan reads goes to the decoder, in one piece")
    func long() throws {
        let text = "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: ResponseHeadScan.maxHeadLength) + "\r\nContent-Length: 2\r\n\r\nOK"
        let (seen, _, _) = try Self.read(text, split: 100)
        #expect(seen == (try Self.decodedByNIO(text)))
    }
}
