import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif
@testable import Agent

// HTTPDate, what If-Modified-Since is read with and Last-Modified written with. Input: the
// header value; its first eight bytes are also a Unix time to format. A date that parses
// formats back to itself (but for the weekday, which is not checked); a time in the
// four-digit years formats as C's gmtime and strftime write it, and parses back.

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times IMF-fixdate can write.
let representable: ClosedRange<Int64> = -62_167_219_200...253_402_300_799

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size).bytes
    let text = String(decoding: input, as: UTF8.self)
    if let seconds = HTTPDate.parse(text) {
        require(representable.contains(seconds), "\(text.debugDescription) parsed to \(seconds), outside the four-digit years")
        let formatted = HTTPDate.format(seconds)
        require(HTTPDate.parse(formatted) == seconds, "\(formatted) did not parse back to \(seconds)")
        // A leap second reads as the next second, so only other dates are written as they were read.
        if !text.hasSuffix(":60 GMT") {
            require(formatted.utf8.dropFirst(3).elementsEqual(text.utf8.dropFirst(3)), "\(text.debugDescription) formats back as \(formatted)")
        }
    }

    var seconds: Int64 = 0
    for byte in input.prefix(8) { seconds = seconds << 8 | Int64(byte) }
    for time in [seconds, seconds % (representable.upperBound + 1)] {
        let formatted = HTTPDate.format(time) // any Int64, even one past year 292 billion, must not trap
        guard representable.contains(time) else { continue }
        require(formatted == strftimeDate(time), "\(time) formatted as \(formatted), C says \(strftimeDate(time))")
        require(HTTPDate.parse(formatted) == time, "\(formatted) did not parse back to \(time)")
    }
    return 0
}

/// The same date as C's gmtime_r and strftime write it (years 1000 to 9999 as they are, others padded).
func strftimeDate(_ time: Int64) -> String {
    var value = time_t(time)
    var parts = tm()
    guard gmtime_r(&value, &parts) != nil else { return "gmtime failed" }
    func format(_ pattern: String) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    // The year is padded here, in its own place: a search for it in the whole string
    // found the day of the month first when both were 22 (a finding of this harness).
    let year = "\(Int(parts.tm_year) + 1900)"
    return format("%a, %d %b ") + String(repeating: "0", count: max(0, 4 - year.count)) + year + format(" %H:%M:%S GMT")
}

runLibFuzzer(testOneInput)
