#if canImport(Glibc)
import Glibc
#endif

/// Reads an HTTP/1 response head line by line, as bytes, without decoding it into
/// strings: where it ends, its status, and the few fields that say how its body is
/// framed. A relay passes a head it understood on as the bytes that came, and leaves
/// any other to NIO's decoder.
///
/// Only the strict form of RFC 9112 is understood: `HTTP/1.0` or `HTTP/1.1`, a
/// three-digit status and a space, every line ended by CRLF, field names of token
/// characters, values of visible characters, spaces and tabs. Anything else (a bare
/// LF, a folded line, a control byte, a head longer than `maxHeadLength`) is
/// `.unusual`, and the caller gives the bytes to the decoder, which has its own rules.
/// Feed it the head from its first byte, again with more bytes each time it answers
/// `.needMore`: it resumes where it stopped.
struct ResponseHeadScan {
    enum Outcome: Equatable {
        /// The head has not ended yet.
        case needMore
        /// The head is the first `headLength` bytes, its blank line included.
        case complete(headLength: Int)
        /// Not the strict form: hand the bytes to a decoder.
        case unusual
    }

    /// What the head says, once `scan` has answered `.complete`.
    struct Facts: Equatable {
        var versionMinor: UInt8 = 0
        var statusCode = 0
        /// Where the reason phrase is, in the bytes scanned.
        var phrase: Range<Int> = 0..<0
        var contentLengthFields = 0
        /// The value of the last `Content-Length`; nil when it was not a decimal number.
        var contentLength: Int64? = nil
        var transferEncodingFields = 0
        /// The last `Transfer-Encoding` is exactly `chunked`, in that spelling.
        var chunked = false
        var hasConnection = false
        var hasTrailer = false
        /// Where the first `ETag` field's value is, in the bytes scanned (trimmed), as
        /// `HTTPHeaders.first(name:)` reads a decoded head.
        var entityTag: Range<Int>? = nil

        /// How the body is framed when the head frames it in a way every reader agrees
        /// on: HTTP/1.1, no `Connection` field (the connection stays open), and either
        /// one `Content-Length` that is a number and no `Transfer-Encoding` (204 and 304:
        /// no body), or one `Transfer-Encoding: chunked` and no length nor announced
        /// trailers. Nil for anything else, which goes to the decoder.
        var plainBody: RawBody? {
            guard versionMinor == 1, statusCode >= 200, !hasConnection, contentLengthFields <= 1 else { return nil }
            // A length that is not a number is the decoder's to refuse, even where no body follows.
            if contentLengthFields == 1, contentLength == nil { return nil }
            if transferEncodingFields > 0 {
                guard transferEncodingFields == 1, chunked, contentLengthFields == 0, !hasTrailer, statusCode != 204, statusCode != 304 else {
                    return nil
                }
                return .chunked
            }
            if statusCode == 204 || statusCode == 304 { return .length(0) }
            return contentLength.map(RawBody.length)
        }
    }

    /// A longer head goes to the decoder, which applies its own limit.
    static let maxHeadLength = 64 * 1024

    private(set) var facts = Facts()
    private var lineStart = 0
    private var searchFrom = 0
    private var sawStatusLine = false

    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        while true {
            guard let lf = Self.index(of: UInt8(ascii: "\n"), in: bytes, from: searchFrom) else {
                searchFrom = bytes.count
                return bytes.count > Self.maxHeadLength ? .unusual : .needMore
            }
            // Every line ends with CRLF; a bare LF (an empty line too) is not the strict form.
            guard lf > lineStart, bytes[lf - 1] == UInt8(ascii: "\r"), lf < Self.maxHeadLength else { return .unusual }
            let end = lf - 1
            searchFrom = lf + 1
            if end == lineStart {
                return sawStatusLine ? .complete(headLength: lf + 1) : .unusual
            }
            let understood = sawStatusLine ? field(bytes, lineStart..<end) : statusLine(bytes, lineStart..<end)
            guard understood else { return .unusual }
            sawStatusLine = true
            lineStart = lf + 1
        }
    }

    /// `HTTP/1.x NNN phrase`, the phrase possibly empty but the space before it there.
    private mutating func statusLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool {
        let start = line.lowerBound
        guard line.count >= 13 else { return false }
        let prefix = "HTTP/1."
        for (offset, byte) in prefix.utf8.enumerated() where bytes[start + offset] != byte { return false }
        let minor = bytes[start + 7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1"), bytes[start + 8] == UInt8(ascii: " ") else { return false }
        var code = 0
        for offset in 9..<12 {
            let digit = bytes[start + offset]
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return false }
            code = code * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard code >= 100, code <= 599, bytes[start + 12] == UInt8(ascii: " ") else { return false }
        let phrase = (start + 13)..<line.upperBound
        for index in phrase where !Self.isFieldByte(bytes[index]) { return false }
        facts.versionMinor = minor - UInt8(ascii: "0")
        facts.statusCode = code
        facts.phrase = phrase
        return true
    }

    /// `name: value`, the name of token characters, the value of field bytes.
    private mutating func field(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool {
        var colon = line.lowerBound
        while colon < line.upperBound, bytes[colon] != UInt8(ascii: ":") {
            guard Self.isTokenByte(bytes[colon]) else { return false }
            colon += 1
        }
        guard colon > line.lowerBound, colon < line.upperBound else { return false }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        for index in valueStart..<valueEnd where !Self.isFieldByte(bytes[index]) { return false }
        while valueStart < valueEnd, Self.isSpace(bytes[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart, Self.isSpace(bytes[valueEnd - 1]) { valueEnd -= 1 }

        let name = line.lowerBound..<colon
        if Self.name(bytes, name, is: "content-length") {
            facts.contentLengthFields += 1
            facts.contentLength = Self.decimal(bytes, valueStart..<valueEnd)
        } else if Self.name(bytes, name, is: "transfer-encoding") {
            facts.transferEncodingFields += 1
            facts.chunked = valueEnd - valueStart == 7 && "chunked".utf8.elementsEqual(bytes[valueStart..<valueEnd])
        } else if Self.name(bytes, name, is: "connection") {
            facts.hasConnection = true
        } else if Self.name(bytes, name, is: "trailer") {
            facts.hasTrailer = true
        } else if facts.entityTag == nil, Self.name(bytes, name, is: "etag") {
            facts.entityTag = valueStart..<valueEnd
        }
        return true
    }

    private static func name(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, is lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            for offset in 0..<range.count {
                let byte = bytes[range.lowerBound + offset]
                let lowered = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                if lowered != expected[offset] { return false }
            }
            return true
        }
    }

    /// ASCII digits only, at least one, no overflow.
    private static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        guard !range.isEmpty else { return nil }
        var value: Int64 = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflowTimes, !overflowSum else { return nil }
            value = sum
        }
        return value
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// A byte a field value or reason phrase may hold: tab, space, visible ASCII, obs-text.
    private static func isFieldByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\t") || (byte >= 0x20 && byte != 0x7F)
    }

    /// RFC 9110's `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + start, Int32(byte), bytes.count - start) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }
}
