#if canImport(Glibc)
import Glibc
#endif

/// An incremental multipart/form-data parser (RFC 7578, RFC 2046): feed it the body in
/// chunks of any size as they arrive and it reports `MultipartEvent`s. Part content is
/// passed on as it comes, never gathered: the parser keeps only a carry of fewer bytes
/// than the boundary line (or, while reading a part's headers, at most `maximumHeaderBytes`),
/// so memory does not grow with the size of an upload.
///
/// No NIO in here: the HTTP layer feeds it the bytes of each ByteBuffer.
struct MultipartParser: Sendable {
    /// The largest header block of one part that is held in memory.
    static let maximumHeaderBytes = 16 * 1024
    /// The most spaces or tabs tolerated after a boundary before its line end.
    static let maximumTransportPadding = 256

    private enum State: Sendable, Equatable {
        /// Before the first boundary: bytes are skipped.
        case preamble
        /// Just after a boundary: `--` (the end) or padding and a line end (a part).
        case afterDelimiter
        /// Reading a part's header block up to its empty line.
        case headers
        /// In a part's content, up to the next boundary.
        case body
        /// After the closing boundary: bytes are skipped.
        case epilogue
    }

    /// `CRLF--boundary`: what ends a part's content (and, with the leading line end the
    /// parser starts with, also what the body starts with).
    private let delimiter: [UInt8]
    private var state: State = .preamble
    /// Bytes from earlier chunks that could not be decided yet.
    private var carry: [UInt8]
    /// While in `.headers`: how many bytes of the carry were already searched for the end.
    private var headerBytesSearched = 0

    /// A parser for bodies whose parts are separated by `boundary` (without the `--`).
    init(boundary: String) throws(MultipartError) {
        try Self.validate(boundary: boundary)
        delimiter = Array("\r\n--\(boundary)".utf8)
        // A body may start with its boundary at once; pretending a line end came before
        // lets one search find the first boundary and every later one.
        carry = [13, 10]
    }

    /// A parser for a request whose Content-Type header is `contentType`.
    init(contentType: String) throws(MultipartError) {
        try self.init(boundary: Self.boundary(fromContentType: contentType))
    }

    /// The boundary parameter of a `multipart/form-data` Content-Type, quoted or not.
    static func boundary(fromContentType contentType: String) throws(MultipartError) -> String {
        guard let parsed = HeaderParameters(contentType), parsed.main == "multipart/form-data" else {
            throw .notMultipartFormData(contentType: contentType)
        }
        guard let boundary = parsed.parameters["boundary"] else { throw .missingBoundary }
        try validate(boundary: boundary)
        return boundary
    }

    /// Whether the closing boundary has been read.
    var isFinished: Bool { state == .epilogue }

    /// Parses the next `bytes` of the body and returns what they completed.
    mutating func feed(_ bytes: [UInt8]) throws(MultipartError) -> [MultipartEvent] {
        // withUnsafeBytes rethrows untyped errors: carry the typed one out in a Result.
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(MultipartError) in try feed(buffer) }
        }
        return try result.get()
    }

    /// Parses the next `bytes` of the body and returns what they completed. The bytes are
    /// not kept beyond the call, except for the small undecided carry.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(MultipartError) -> [MultipartEvent] {
        var events: [MultipartEvent] = []
        if state == .epilogue { return events }
        if carry.isEmpty {
            try process(bytes, into: &events)
        } else {
            var combined = carry
            combined.append(contentsOf: bytes)
            carry = []
            let result = combined.withUnsafeBytes { buffer in
                Result { () throws(MultipartError) in try process(buffer, into: &events) }
            }
            try result.get()
        }
        return events
    }

    /// Declares the body complete; throws `truncated` unless the closing boundary was read.
    func finish() throws(MultipartError) {
        guard state == .epilogue else { throw .truncated }
    }

    // MARK: - Parsing

    /// Runs the state machine over `data` (the carry and the new chunk, contiguous);
    /// whatever cannot be decided yet becomes the new carry.
    private mutating func process(_ data: UnsafeRawBufferPointer, into events: inout [MultipartEvent]) throws(MultipartError) {
        var index = 0
        while true {
            switch state {
            case .preamble, .body:
                if let found = firstDelimiter(in: data, from: index) {
                    if state == .body {
                        emitBody(data, index..<found, into: &events)
                        events.append(.partEnd)
                    }
                    index = found + delimiter.count
                    state = .afterDelimiter
                    continue
                }
                // Keep only a tail that may be the start of a boundary split across chunks.
                let kept = partialDelimiterLength(atEndOf: data, from: index)
                if state == .body { emitBody(data, index..<(data.count - kept), into: &events) }
                keep(data, from: data.count - kept)
                return

            case .afterDelimiter:
                guard data.count - index >= 2 else { return keep(data, from: index) }
                if data[index] == UInt8(ascii: "-") && data[index + 1] == UInt8(ascii: "-") {
                    state = .epilogue
                    events.append(.end)
                    return
                }
                var cursor = index
                while cursor < data.count, data[cursor] == UInt8(ascii: " ") || data[cursor] == UInt8(ascii: "\t") {
                    cursor += 1
                }
                if cursor - index > Self.maximumTransportPadding { throw .malformedDelimiter }
                guard cursor + 1 < data.count else { return keep(data, from: index) }
                guard data[cursor] == 13, data[cursor + 1] == 10 else { throw .malformedDelimiter }
                index = cursor + 2
                state = .headers
                headerBytesSearched = 0

            case .headers:
                guard let (headerEnd, next) = headerBlockEnd(in: data, from: index) else {
                    let pending = data.count - index
                    // The last three bytes may be the start of the empty line that ends the
                    // block ("\r\n\r"): not counted, so the limit is the same whatever the chunks.
                    if pending > Self.maximumHeaderBytes + 3 { throw .headersTooLarge(limit: Self.maximumHeaderBytes) }
                    // Next time, search only the bytes not searched yet (less a CRLFCR overlap).
                    headerBytesSearched = max(0, pending - 3)
                    return keep(data, from: index)
                }
                if headerEnd - index > Self.maximumHeaderBytes { throw .headersTooLarge(limit: Self.maximumHeaderBytes) }
                let headers = try Self.parseHeaders(UnsafeRawBufferPointer(rebasing: data[index..<headerEnd]))
                events.append(.partBegin(headers))
                index = next
                state = .body

            case .epilogue:
                return
            }
        }
    }

    private mutating func keep(_ data: UnsafeRawBufferPointer, from index: Int) {
        carry = Array(data[index...])
    }

    private func emitBody(_ data: UnsafeRawBufferPointer, _ range: Range<Int>, into events: inout [MultipartEvent]) {
        if !range.isEmpty { events.append(.body(Array(data[range]))) }
    }

    /// The offset of the first complete delimiter at or after `start`.
    private func firstDelimiter(in data: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let base = data.baseAddress else { return nil }
        var index = start
        let last = data.count - delimiter.count
        while index <= last {
            // memchr finds the candidate CRs fast; most of a file has none.
            guard let found = memchr(base + index, 13, last - index + 1) else { return nil }
            let candidate = base.distance(to: UnsafeRawPointer(found))
            if delimiter.withUnsafeBytes({ memcmp(base + candidate, $0.baseAddress!, delimiter.count) }) == 0 {
                return candidate
            }
            index = candidate + 1
        }
        return nil
    }

    /// The length of the longest tail of `data[start...]` that is a proper prefix of the
    /// delimiter (0 if none): those bytes might be a boundary the next chunk completes.
    private func partialDelimiterLength(atEndOf data: UnsafeRawBufferPointer, from start: Int) -> Int {
        let available = data.count - start
        var length = min(delimiter.count - 1, available)
        while length > 0 {
            let tail = data.count - length
            if data[tail] == 13, (0..<length).allSatisfy({ data[tail + $0] == delimiter[$0] }) {
                return length
            }
            length -= 1
        }
        return 0
    }

    /// Where the header block that starts at `start` ends (exclusive, without the empty
    /// line) and where the content starts; nil if the empty line has not arrived yet.
    private func headerBlockEnd(in data: UnsafeRawBufferPointer, from start: Int) -> (Int, Int)? {
        // No headers at all: the empty line comes first.
        if data.count - start >= 2, data[start] == 13, data[start + 1] == 10 {
            return (start, start + 2)
        }
        var index = start + headerBytesSearched
        while index + 3 < data.count {
            if data[index] == 13, data[index + 1] == 10, data[index + 2] == 13, data[index + 3] == 10 {
                return (index, index + 4)
            }
            index += 1
        }
        return nil
    }

    /// Reads `Name: value` lines (CRLF-separated) and the Content-Disposition parameters.
    private static func parseHeaders(_ block: UnsafeRawBufferPointer) throws(MultipartError) -> MultipartPartHeaders {
        var fields: [String: String] = [:]
        let text = String(decoding: block, as: UTF8.self)
        var lastName: String?
        for line in text.split(separator: "\r\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.first == " " || line.first == "\t" {
                // Obsolete line folding: the line continues the previous header's value.
                guard let name = lastName else { throw .malformedHeader(String(line)) }
                fields[name, default: ""] += " " + HeaderParameters.trimmed(String(line))
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { throw .malformedHeader(String(line)) }
            let name = HeaderParameters.trimmed(String(line[..<colon])).lowercased()
            guard !name.isEmpty, !name.contains(" ") else { throw .malformedHeader(String(line)) }
            fields[name] = HeaderParameters.trimmed(String(line[line.index(after: colon)...]))
            lastName = name
        }
        var name: String?
        var filename: String?
        if let disposition = fields["content-disposition"] {
            guard let parsed = HeaderParameters(disposition) else {
                throw .malformedHeader("Content-Disposition: \(disposition)")
            }
            name = parsed.parameters["name"]
            filename = parsed.parameters["filename*"] ?? parsed.parameters["filename"]
        }
        return MultipartPartHeaders(fields: fields, name: name, filename: filename)
    }

    /// RFC 2046: 1 to 70 characters from `bchars`, not ending in a space.
    private static func validate(boundary: String) throws(MultipartError) {
        let allowed = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ".utf8)
        guard (1...70).contains(boundary.utf8.count),
              boundary.utf8.allSatisfy(allowed.contains),
              boundary.utf8.last != UInt8(ascii: " ") else {
            throw .invalidBoundary(boundary)
        }
    }
}
