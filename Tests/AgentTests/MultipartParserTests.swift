import Testing
@testable import Agent

/// One parsed part: its headers and all its content chunks joined.
struct ParsedPart: Equatable {
    var headers: MultipartPartHeaders
    var content: [UInt8]
}

/// Feeds `body` to a fresh parser in chunks of `chunkSize` (the whole body when nil),
/// checks the events are well ordered, and returns the parts; throws what the parser throws.
func parse(_ body: [UInt8], boundary: String = "XyZ-boundary", chunkSize: Int? = nil) throws -> [ParsedPart] {
    var parser = try MultipartParser(boundary: boundary)
    var events: [MultipartEvent] = []
    var offset = 0
    repeat {
        let end = min(body.count, offset + (chunkSize ?? max(body.count, 1)))
        events += try parser.feed(Array(body[offset..<end]))
        offset = end
    } while offset < body.count
    try parser.finish()
    var parts: [ParsedPart] = []
    var open = false
    var ended = false
    for event in events {
        #expect(!ended, "an event after .end")
        switch event {
        case .partBegin(let headers):
            #expect(!open, "a part began inside another")
            parts.append(ParsedPart(headers: headers, content: []))
            open = true
        case .body(let bytes):
            #expect(open, "content outside a part")
            #expect(!bytes.isEmpty, "an empty body chunk")
            parts[parts.count - 1].content += bytes
        case .partEnd:
            #expect(open, "a part ended that had not begun")
            open = false
        case .end:
            #expect(!open, "the form ended inside a part")
            ended = true
        }
    }
    #expect(ended)
    return parts
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// What Portainer's upload looks like: the target folder, then the file, with binary
/// content full of line ends, dashes and near-boundaries.
let awkwardContent: [UInt8] = bytes("line 1\r\n--XyZ-boundar\r\n--XyZ-boundarY\r\n\r\n--\r\n") + [0, 13, 10, 255, 13] + bytes("\r\n-")
let portainerBody: [UInt8] =
    bytes("--XyZ-boundary\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n/host/tmp/up\r\n")
    + bytes("--XyZ-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\"; c.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
    + awkwardContent
    + bytes("\r\n--XyZ-boundary--\r\n")

@Suite struct MultipartParserTests {
    @Test(arguments: [1, 2, 7, 64, nil] as [Int?])
    func theSameFormWhateverTheChunks(chunkSize: Int?) throws {
        let parts = try parse(portainerBody, chunkSize: chunkSize)
        #expect(parts.count == 2)
        #expect(parts[0].headers.name == "Path")
        #expect(parts[0].headers.filename == nil)
        #expect(parts[0].content == bytes("/host/tmp/up"))
        #expect(parts[1].headers.name == "file")
        #expect(parts[1].headers.filename == "a \"b\"; c.bin")
        #expect(parts[1].headers.contentType == "application/octet-stream")
        #expect(parts[1].content == awkwardContent)
    }

    @Test func aBoundarySplitAtEveryPointBetweenTwoChunks() throws {
        let expected = try parse(portainerBody)
        for split in 1..<portainerBody.count {
            var parser = try MultipartParser(boundary: "XyZ-boundary")
            var events = try parser.feed(Array(portainerBody[..<split]))
            events += try parser.feed(Array(portainerBody[split...]))
            try parser.finish()
            var contents: [[UInt8]] = []
            for event in events {
                switch event {
                case .partBegin: contents.append([])
                case .body(let chunk): contents[contents.count - 1] += chunk
                default: break
                }
            }
            #expect(contents == expected.map(\.content), "split at \(split)")
        }
    }

    @Test func contentIsPassedOnAsItComesNotHeld() throws {
        // 4 MiB of a file in 64 KiB chunks: after each chunk, all but a boundary's length
        // of what was fed has been handed out, so memory does not grow with the file.
        var parser = try MultipartParser(boundary: "XyZ-boundary")
        var fed = 0
        var handedOut = 0
        func feed(_ chunk: [UInt8]) throws {
            fed += chunk.count
            for event in try parser.feed(chunk) {
                if case .body(let content) = event { handedOut += content.count }
            }
        }
        let head = bytes("--XyZ-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n")
        try feed(head)
        let chunk = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for _ in 0..<64 {
            try feed(chunk)
            #expect(fed - head.count - handedOut < "\r\n--XyZ-boundary".utf8.count)
        }
        try feed(bytes("\r\n--XyZ-boundary--"))
        try parser.finish()
        #expect(handedOut == 64 * 65536)
    }

    @Test func preambleEpiloguePaddingAndEmptyParts() throws {
        let body = bytes("This is a preamble.\r\n--XyZ-boundary  \t\r\n\r\n\r\n--XyZ-boundary\r\nContent-Disposition: form-data; name=empty\r\n\r\n\r\n--XyZ-boundary--\r\nand an epilogue, ignored\r\n--XyZ-boundary\r\n")
        for chunkSize in [1, 3, nil] as [Int?] {
            let parts = try parse(body, chunkSize: chunkSize)
            #expect(parts.count == 2)
            #expect(parts[0].headers.fields.isEmpty)
            #expect(parts[0].headers.name == nil)
            #expect(parts[0].content.isEmpty)
            #expect(parts[1].headers.name == "empty")
            #expect(parts[1].content.isEmpty)
        }
    }

    @Test func headersAreCaseInsensitiveAndFilenameStarWins() throws {
        let body = bytes("--XyZ-boundary\r\ncontent-DISPOSITION: form-data; NAME=\"file\"; filename=\"fallback.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt\r\nX-Folded: one\r\n two\r\n\r\nx\r\n--XyZ-boundary--")
        let parts = try parse(body)
        #expect(parts[0].headers.name == "file")
        #expect(parts[0].headers.filename == "été.txt")
        #expect(parts[0].headers.fields["x-folded"] == "one two")
    }

    @Test(arguments: [
        ("multipart/form-data; boundary=XyZ-boundary", "XyZ-boundary"),
        ("multipart/form-data; boundary=\"quoted boundary:=?\"", "quoted boundary:=?"),
        ("Multipart/Form-Data;charset=utf-8;  BOUNDARY=----WebKitFormBoundary7MA4YWxkTrZu0gW", "----WebKitFormBoundary7MA4YWxkTrZu0gW"),
        ("multipart/form-data; boundary=------------------------d74496d66958873e", "------------------------d74496d66958873e"),
    ])
    func theBoundaryComesFromTheContentType(contentType: String, boundary: String) throws {
        #expect(try MultipartParser.boundary(fromContentType: contentType) == boundary)
        var parser = try MultipartParser(contentType: contentType)
        #expect(try parser.feed(bytes("--\(boundary)--")) == [.end])
        #expect(parser.isFinished)
    }

    @Test(arguments: [
        ("application/json", MultipartError.notMultipartFormData(contentType: "application/json")),
        ("multipart/mixed; boundary=abc", .notMultipartFormData(contentType: "multipart/mixed; boundary=abc")),
        ("multipart/form-data", .missingBoundary),
        ("multipart/form-data; charset=utf-8", .missingBoundary),
        ("multipart/form-data; boundary=", .invalidBoundary("")),
        ("multipart/form-data; boundary=\"ends with space \"", .invalidBoundary("ends with space ")),
        ("multipart/form-data; boundary=bad\\u{7}", .invalidBoundary("bad\\u{7}")),
        ("multipart/form-data; boundary=\(String(repeating: "a", count: 71))", .invalidBoundary(String(repeating: "a", count: 71))),
        ("multipart/form-data; boundary=\"unterminated", .notMultipartFormData(contentType: "multipart/form-data; boundary=\"unterminated")),
    ])
    func badContentTypesAreRefused(contentType: String, expected: MultipartError) {
        #expect(throws: expected) { try MultipartParser.boundary(fromContentType: contentType) }
    }

    @Test(arguments: [1, 7, nil] as [Int?])
    func aCutOffBodyIsTruncated(chunkSize: Int?) {
        for cut in [0, 5, 40, portainerBody.count / 2, portainerBody.count - 5] {
            #expect(throws: MultipartError.truncated, "cut at \(cut)") {
                try parse(Array(portainerBody[..<cut]), chunkSize: chunkSize)
            }
        }
    }

    @Test(arguments: [1, 7, nil] as [Int?])
    func malformedBodiesAreRefused(chunkSize: Int?) {
        let cases: [(String, MultipartError)] = [
            ("--XyZ-boundaryX\r\n\r\ncontent\r\n--XyZ-boundary--", .malformedDelimiter),
            ("--XyZ-boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ-boundary-x", .malformedDelimiter),
            ("--XyZ-boundary\r\nno colon here\r\n\r\nx\r\n--XyZ-boundary--", .malformedHeader("no colon here")),
            ("--XyZ-boundary\r\n folded first\r\n\r\nx\r\n--XyZ-boundary--", .malformedHeader(" folded first")),
            ("--XyZ-boundary\r\nContent-Disposition: form-data; name\r\n\r\nx\r\n--XyZ-boundary--", .malformedHeader("Content-Disposition: form-data; name")),
            // Line ends must be CRLF, as every browser, curl and axios send them.
            ("--XyZ-boundary\nContent-Disposition: form-data; name=a\n\nx\n--XyZ-boundary--\n", .malformedDelimiter),
        ]
        for (body, expected) in cases {
            #expect(throws: expected, "\(body)") { try parse(bytes(body), chunkSize: chunkSize) }
        }
    }

    /// Found by the multipart fuzzer: a header block of exactly the limit was refused when a
    /// chunk ended inside the empty line after it, and accepted otherwise.
    @Test func aHeaderBlockAtTheLimitIsAcceptedWhereverTheChunksEnd() throws {
        let field = "X-Big: "
        let block = field + String(repeating: "x", count: MultipartParser.maximumHeaderBytes - field.utf8.count)
        let body = bytes("--XyZ-boundary\r\n\(block)\r\n\r\nx\r\n--XyZ-boundary--")
        let blockEnd = "--XyZ-boundary\r\n".utf8.count + MultipartParser.maximumHeaderBytes
        for split in (blockEnd - 1)...(blockEnd + 4) {
            var parser = try MultipartParser(boundary: "XyZ-boundary")
            var events = try parser.feed(Array(body[..<split]))
            events += try parser.feed(Array(body[split...]))
            try parser.finish()
            #expect(events.first == .partBegin(MultipartPartHeaders(fields: ["x-big": String(block.dropFirst(field.utf8.count))], name: nil, filename: nil)), "split at \(split)")
        }
    }

    @Test(arguments: [1024, nil] as [Int?])
    func headersLargerThanTheLimitAreRefused(chunkSize: Int?) {
        let huge = String(repeating: "x", count: MultipartParser.maximumHeaderBytes)
        let withEnd = bytes("--XyZ-boundary\r\nX-Big: \(huge)\r\n\r\nx\r\n--XyZ-boundary--")
        let withoutEnd = bytes("--XyZ-boundary\r\nX-Big: \(huge)\(huge)")
        #expect(throws: MultipartError.headersTooLarge(limit: MultipartParser.maximumHeaderBytes)) {
            try parse(withEnd, chunkSize: chunkSize)
        }
        #expect(throws: MultipartError.headersTooLarge(limit: MultipartParser.maximumHeaderBytes)) {
            try parse(withoutEnd, chunkSize: chunkSize)
        }
    }

    @Test func nothingIsReportedAfterTheEnd() throws {
        var parser = try MultipartParser(boundary: "b1")
        #expect(try parser.feed(bytes("--b1--")) == [.end])
        #expect(try parser.feed(bytes("\r\n--b1\r\n\r\nmore\r\n--b1--")) == [])
        try parser.finish()
    }
}
