import ASCIIText
import FuzzSupport
@testable import Agent

// ByteRange, what a download's Range header is read with. Input: the file's size (a line
// of digits, any length), then the header value. Whatever the header, a part is a
// non-empty range inside the file. Then a header built from the input's bytes (two
// positions of up to 64 bits, maybe written with 20 more zeros, so past Int64.max) is
// compared with the answer RFC 9110 gives, computed here without any Int64 arithmetic.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let fileSize = ASCII.saturatingDecimal(input.field()) ?? 0
    let header = input.rest()
    let answer = ByteRange.parse(String(decoding: header, as: UTF8.self), size: fileSize)
    checkInside(answer, size: fileSize, header: String(decoding: header, as: UTF8.self))

    var choices = FuzzInput(Array(header))
    let first = Position(&choices), last = Position(&choices)
    let shape = choices.byte()
    let spec: String, expected: ByteRange
    switch shape % 3 {
    case 0: // bytes=first-last
        spec = "\(first)-\(last)"
        if last < first { expected = .whole }
        else if !(first < fileSize) { expected = .unsatisfiable }
        else { expected = .part(Int64(first.value)..<(last < fileSize ? Int64(last.value) + 1 : fileSize)) }
    case 1: // bytes=first-
        spec = "\(first)-"
        expected = first < fileSize ? .part(Int64(first.value)..<fileSize) : .unsatisfiable
    default: // bytes=-last: the last `last` bytes
        spec = "-\(last)"
        if last.isZero || fileSize == 0 { expected = .unsatisfiable }
        else { expected = .part((last < fileSize ? fileSize - Int64(last.value) : 0)..<fileSize) }
    }
    // The unit's case and the white space around the range do not matter.
    let unit = shape & 0x10 == 0 ? "bytes" : "BYTES"
    let built = "\(unit)=" + (shape & 0x20 == 0 ? spec : " \t\(spec) ,")
    let parsed = ByteRange.parse(built, size: fileSize)
    require(parsed == expected, "\(built.debugDescription) on \(fileSize) bytes gave \(parsed), RFC 9110 says \(expected)")
    if case .part(let range) = parsed {
        // What Content-Range then says, asked again, is the same part.
        let again = ByteRange.parse("bytes=\(range.lowerBound)-\(range.upperBound - 1)", size: fileSize)
        require(again == parsed, "the part \(range) asked again gave \(again)")
    }
    return 0
}

func checkInside(_ answer: ByteRange, size: Int64, header: String) {
    guard case .part(let range) = answer else { return }
    require(0 <= range.lowerBound && range.lowerBound < range.upperBound && range.upperBound <= size,
            "\(header.debugDescription) on \(size) bytes gave \(range), not a non-empty part of the file")
}

/// A byte position as a client may write it: up to 64 bits, or that many followed by
/// twenty zeros (past any Int64, so every comparison with a size is "greater").
struct Position: CustomStringConvertible {
    var value: UInt64
    var huge: Bool

    init(_ input: inout FuzzInput) {
        value = 0
        for _ in 0..<8 { value = value << 8 | UInt64(input.byte()) }
        // Small values are the common case: most inputs are reduced below a kilobyte.
        if value & 1 == 0 { value >>= 54 }
        huge = value > 0 && input.byte() == 0xff
    }

    var isZero: Bool { value == 0 }
    var description: String { huge ? "\(value)00000000000000000000" : "\(value)" }

    static func < (lhs: Position, rhs: Position) -> Bool {
        switch (lhs.huge, rhs.huge) {
        case (false, false): lhs.value < rhs.value
        case (false, true): true
        case (true, false): false
        case (true, true): lhs.value < rhs.value
        }
    }

    static func < (lhs: Position, size: Int64) -> Bool {
        !lhs.huge && lhs.value < UInt64(size)
    }
}

runLibFuzzer(testOneInput)
