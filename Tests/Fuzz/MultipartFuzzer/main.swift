import FuzzSupport
@testable import Agent

// The multipart/form-data parser, fed as the network feeds it: in chunks. Input: the
// Content-Type line, a line of chunk sizes (one byte each, used in turn), then the body.
// The body is parsed twice, whole and in those chunks: both must agree, and each must
// report a well-formed sequence of events.

/// Used when the Content-Type line has no usable boundary, so the body is still parsed.
let fallbackBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let contentType = input.text()
    let sizes = input.field().map { max(1, Int($0)) }
    let body = Array(input.rest())

    let boundary = (try? MultipartParser.boundary(fromContentType: contentType)) ?? fallbackBoundary
    let whole = parse(body, boundary: boundary, chunkSizes: [])
    let chunked = parse(body, boundary: boundary, chunkSizes: sizes)
    require(whole == chunked, "chunks \(sizes) changed the outcome: \(whole) vs \(chunked)")
    return 0
}

/// What a parse came to: the events (consecutive content chunks joined), and the error
/// that stopped it or whether the closing boundary was read.
struct Outcome: Equatable, CustomStringConvertible {
    var events: [MultipartEvent] = []
    var error: MultipartError?
    var finished = false
    /// Content not yet added to `events`.
    var content: [UInt8] = []

    var description: String {
        let shown = events.map { event -> String in
            switch event {
            case .partBegin(let headers):
                return "partBegin(\(headers.fields.count) fields, \(headers.fields.values.map(\.utf8.count).reduce(0, +)) bytes of values)"
            case .body(let bytes): return "body(\(bytes.count) bytes)"
            default: return "\(event)"
            }
        }
        return "\(shown) error: \(String(describing: error)) finished: \(finished)"
    }
}

func parse(_ body: [UInt8], boundary: String, chunkSizes: [Int]) -> Outcome {
    var parser = try! MultipartParser(boundary: boundary) // a boundary that boundary(fromContentType:) returned, or the valid fallback
    var outcome = Outcome()
    var grammar = EventGrammar(delimiter: Array("\r\n--\(boundary)".utf8))
    var offset = 0
    var turn = 0
    while offset < body.count {
        let size = chunkSizes.isEmpty ? body.count : chunkSizes[turn % chunkSizes.count]
        turn += 1
        let chunk = Array(body[offset..<min(body.count, offset + size)])
        offset += chunk.count
        do {
            for event in try parser.feed(chunk) {
                grammar.check(event)
                outcome.append(event)
            }
        } catch {
            // A whole parse loses the events of the call that threw: compare only the error.
            return Outcome(error: error)
        }
        require(parser.isFinished == grammar.ended, "isFinished is \(parser.isFinished) after \(outcome)")
    }
    outcome.flushContent()
    outcome.finished = parser.isFinished
    require((try? parser.finish()) != nil || !parser.isFinished, "finish() refused a finished body")
    // After the closing boundary, nothing more is reported.
    if parser.isFinished { require((try? parser.feed(Array("\r\n--\(boundary)\r\n\r\n".utf8)))?.isEmpty == true, "events after the end") }
    return outcome
}

extension Outcome {
    /// Adds `event`, content joined to the content before it (in `content` until the next
    /// event, so that joining stays linear).
    mutating func append(_ event: MultipartEvent) {
        if case .body(let more) = event {
            content += more
        } else {
            flushContent()
            events.append(event)
        }
    }

    mutating func flushContent() {
        if !content.isEmpty { events.append(.body(content)) }
        content = []
    }
}

/// partBegin, body*, partEnd, repeated, then end and nothing after it; content chunks are
/// never empty and a part's content never holds the delimiter that ends it.
struct EventGrammar {
    let delimiter: [UInt8]
    var inPart = false
    var ended = false
    /// The end of the current part's content so far, to find a delimiter split across chunks.
    var tail: [UInt8] = []

    mutating func check(_ event: MultipartEvent) {
        require(!ended, "\(event) after the end")
        switch event {
        case .partBegin(let headers):
            require(!inPart, "a part began inside a part")
            require(headers.fields.keys.allSatisfy { $0 == $0.lowercased() && !$0.isEmpty }, "header names \(headers.fields.keys)")
            inPart = true
            tail = []
        case .body(let bytes):
            require(inPart, "content outside a part")
            require(!bytes.isEmpty, "an empty content chunk")
            let window = tail + bytes
            require(!contains(window, delimiter), "a part's content holds its delimiter")
            tail = Array(window.suffix(delimiter.count - 1))
        case .partEnd:
            require(inPart, "a part ended that never began")
            inPart = false
        case .end:
            require(!inPart, "the form ended inside a part")
            ended = true
        }
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

runLibFuzzer(testOneInput)
