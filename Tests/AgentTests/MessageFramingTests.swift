import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Proxy
import Testing

/// The one framing rule (RFC 9112 §6.1–6.3), as plain values.
@Suite("Message framing")
struct MessageFramingTests {
    static func head(_ headers: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: .POST, uri: "/x", headers: HTTPHeaders(headers))
    }

    @Test("unambiguous framings are read as such",
          arguments: [
            ([], MessageFraming.Body.none),
            ([("Content-Length", "0")], .length(0)),
            ([("content-length", " 42 ")], .length(42)),
            ([("Content-Length", "42"), ("Content-Length", "42")], .length(42)),
            ([("Transfer-Encoding", "chunked")], .chunked),
            ([("TRANSFER-ENCODING", "Chunked")], .chunked),
            ([("Transfer-Encoding", " CHUNKED\t")], .chunked),
          ] as [([(String, String)], MessageFraming.Body)])
    func accepted(headers: [(String, String)], body: MessageFraming.Body) throws {
        #expect(try MessageFraming.requestBody(of: Self.head(headers)).get() == body)
    }

    @Test("ambiguous framings are refused",
          arguments: [
            [("Transfer-Encoding", "gzip")],
            [("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
            [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
            [("Transfer-Encoding", "gzip, chunked")],
            [("Transfer-Encoding", "chunked, chunked")],
            [("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            [("Content-Length", "5"), ("Content-Length", "6")],
            [("Content-Length", "-1")],
            [("Content-Length", "+5")],
            [("Content-Length", "5, 5")],
            [("Content-Length", "")],
            [("Content-Length", "9223372036854775808")],
            [("Content-Length", "٥")],
          ] as [[(String, String)]])
    func refused(headers: [(String, String)]) {
        #expect(throws: MessageFraming.Problem.self) { try MessageFraming.requestBody(of: Self.head(headers)).get() }
    }

    @Test("Transfer-Encoding on HTTP/1.0 is refused")
    func http10() throws {
        #expect(throws: MessageFraming.Problem.self) {
            try MessageFraming.requestBody(of: Self.head([("Transfer-Encoding", "chunked")], version: .http1_0)).get()
        }
        #expect(try MessageFraming.requestBody(of: Self.head([("Content-Length", "3")], version: .http1_0)).get() == .length(3))
    }

    static func response(_ status: HTTPResponseStatus, _ headers: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(headers))
    }

    @Test("a relayed answer is framed for its client: bodiless ones never wait, one ending with the upstream is chunked for 1.1 and said to close for 1.0")
    func relayed() {
        func relay(_ head: HTTPResponseHead, method: HTTPMethod = .GET, client: HTTPVersion = .http1_1) -> MessageFraming.Relayed {
            MessageFraming.relayed(head, body: (try? MessageFraming.responseBody(of: head).get()) ?? .none, method: method, clientVersion: client)
        }
        // Podman's HEAD /_ping: no length, no body, nothing to add.
        let ping = relay(Self.response(.ok, [("Api-Version", "1.41")]), method: .HEAD)
        #expect(ping == .init(head: Self.response(.ok, [("Api-Version", "1.41")]), endsWithConnection: false))
        // A HEAD, 204 or 304 answer never carries chunk framing the encoder would end with a last chunk.
        for (status, method) in [(HTTPResponseStatus.ok, HTTPMethod.HEAD), (.noContent, .GET), (.notModified, .GET)] {
            let answer = relay(Self.response(status, [("Transfer-Encoding", "chunked"), ("ETag", "x")]), method: method)
            #expect(answer.head.headers[canonicalForm: "transfer-encoding"].isEmpty)
            #expect(answer.head.headers.first(name: "etag") == "x")
            #expect(!answer.endsWithConnection)
        }
        #expect(relay(Self.response(.notModified, [("Content-Length", "12")])).head.headers.first(name: "content-length") == "12")
        // Until the upstream closes: chunked for an HTTP/1.1 client (even from a 1.0 upstream).
        let untilClose = relay(Self.response(.ok, [("Content-Type", "application/vnd.docker.raw-stream")], version: .http1_0))
        #expect(untilClose.head.version == .http1_1)
        #expect(untilClose.head.headers[canonicalForm: "transfer-encoding"] == ["chunked"])
        #expect(!untilClose.endsWithConnection)
        // An HTTP/1.0 client reads neither chunks nor a silent close: Connection: close.
        for headers in [[("Content-Type", "text/plain")], [("Transfer-Encoding", "chunked")]] {
            let old = relay(Self.response(.ok, headers), client: .http1_0)
            #expect(old.endsWithConnection)
            #expect(old.head.headers.first(name: "connection") == "close")
            #expect(old.head.headers[canonicalForm: "transfer-encoding"].isEmpty)
        }
        // A length or chunked body goes as framed.
        #expect(relay(Self.response(.ok, [("Content-Length", "2")])).head.headers.first(name: "content-length") == "2")
        #expect(relay(Self.response(.ok, [("Transfer-Encoding", "Chunked")])).head.headers.first(name: "transfer-encoding") == "chunked")
    }

    @Test("keep-alive is read from the headers: 1.1 unless close, 1.0 only with keep-alive")
    func keepsAlive() {
        #expect(MessageFraming.keepsAlive(HTTPHeaders(), version: .http1_1))
        #expect(!MessageFraming.keepsAlive(HTTPHeaders([("Connection", "Close")]), version: .http1_1))
        #expect(!MessageFraming.keepsAlive(HTTPHeaders([("Connection", "upgrade, close")]), version: .http1_1))
        #expect(!MessageFraming.keepsAlive(HTTPHeaders(), version: .http1_0))
        #expect(MessageFraming.keepsAlive(HTTPHeaders([("Connection", "Keep-Alive")]), version: .http1_0))
    }

    @Test("a chunked body's header is rewritten in the spelling NIO's encoder frames as chunked")
    func normalized() {
        let headers = HTTPHeaders([("Host", "x"), ("Transfer-Encoding", "Chunked")])
        let rewritten = MessageFraming.normalized(headers, body: .chunked)
        #expect(rewritten.first(name: "transfer-encoding") == "chunked")
        #expect(rewritten[canonicalForm: "transfer-encoding"].count == 1)
        // Encoded by NIO's own encoder, as the relay does: chunk framing is there.
        let channel = EmbeddedChannel()
        var configuration = HTTPRequestEncoder.Configuration()
        configuration.automaticallySetFramingHeaders = false
        try? channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder(configuration: configuration))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x", headers: rewritten)
        try? channel.writeOutbound(HTTPClientRequestPart.head(head))
        try? channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "hello"))))
        try? channel.writeOutbound(HTTPClientRequestPart.end(nil))
        var wire = ""
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { wire += String(buffer: buffer) }
        #expect(wire.hasSuffix("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "wire: \(wire)")
    }
}

/// The upstream's own reason phrases, read in front of NIO's decoder.
@Suite("Reason phrases")
struct ReasonPhraseTests {
    /// Feeds `bytes` to a recorder in two reads split at `split`; the phrases it recorded.
    static func phrases(_ text: String, split: Int) throws -> [String] {
        let recorder = ResponseHeadReader()
        recorder.expectResponse(raw: .never)
        let channel = EmbeddedChannel(handler: recorder)
        let bytes = Array(text.utf8)
        try channel.writeInbound(ByteBuffer(bytes: bytes[..<split]))
        try channel.writeInbound(ByteBuffer(bytes: bytes[split...]))
        var phrases: [String] = []
        while let phrase = recorder.nextPhrase() { phrases.append(phrase) }
        // Every byte passes on unchanged.
        var passed = ""
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { passed += String(buffer: buffer) }
        #expect(passed == text)
        return phrases
    }

    @Test("the engine's 101 UPGRADED, whatever the reads, and nothing from the stream behind it")
    func upgraded() throws {
        let text = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nHTTP/1.1 200 Not A Head\r\n"
        for split in 0...text.utf8.count {
            #expect(try Self.phrases(text, split: split) == ["UPGRADED"])
        }
    }

    @Test("interim answers' phrases, then the final one; a body is never scanned")
    func interim() throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Nope\r\nContent-Length: 20\r\n\r\nHTTP/1.1 200 Body\r\n\r\n"
        for split in 0...text.utf8.count {
            #expect(try Self.phrases(text, split: split) == ["Continue", "Early", "Nope"])
        }
    }

    @Test("a status line of maxLineLength bytes is recorded, a longer one is not, whatever the reads")
    func lineLimit() throws {
        // The line is what comes before its "\n": "HTTP/1.1 200 ", the phrase and "\r".
        let fits = ResponseHeadReader.maxLineLength - "HTTP/1.1 200 \r".utf8.count
        for (length, expected) in [(fits, [String(repeating: "a", count: fits)]), (fits + 1, [])] as [(Int, [String])] {
            let text = "HTTP/1.1 200 " + String(repeating: "a", count: length) + "\r\nContent-Length: 0\r\n\r\n"
            for split in [0, 1, 12, 13, length, length + 13, length + 14, length + 15, text.utf8.count] {
                #expect(try Self.phrases(text, split: split) == expected, "length \(length), split \(split)")
            }
        }
    }

    @Test("an empty phrase is kept empty")
    func empty() throws {
        #expect(try Self.phrases("HTTP/1.1 204 \r\n\r\n", split: 3) == [""])
    }
}
