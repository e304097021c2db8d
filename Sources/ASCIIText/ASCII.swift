/// The character classes and numbers of the ASCII text that headers, query strings and
/// ids are written in, read byte by byte. `Character.isHexDigit`, `isNumber` and
/// `isLetter` are Unicode-aware (a full-width `ａ` is a hex digit to them), so text from
/// the wire is never judged by them. All of it is inlinable: headers and query
/// strings are scanned with it byte by byte, from other modules.
public enum ASCII {
    @inlinable
    public static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    @inlinable
    public static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    @inlinable
    public static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isDigit(byte) || isLetter(byte)
    }

    /// `A-Z` as `a-z`, any other byte as it is.
    @inlinable
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 0x20 : byte
    }

    /// Whether `text` begins with `lowercasePrefix` in any ASCII case (header names are
    /// case-insensitive), compared byte by byte without lowercasing a copy.
    @inlinable
    public static func hasPrefixIgnoringCase(_ text: String, _ lowercasePrefix: StaticString) -> Bool {
        let prefix = UnsafeBufferPointer(start: lowercasePrefix.utf8Start, count: lowercasePrefix.utf8CodeUnitCount)
        guard text.utf8.count >= prefix.count else { return false }
        return zip(text.utf8, prefix).allSatisfy { lowercased($0) == $1 }
    }

    /// `0-9`, `a-f`: the digits of the ids Docker generates.
    @inlinable
    public static func isLowercaseHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// The value of a hex digit in either case, nil for anything else.
    @inlinable
    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Docker's restricted name, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, of 1 to `maximumLength`
    /// bytes: container names and id prefixes, node names. Nothing in it needs escaping
    /// in a path or a header, and no `..` can be a whole component.
    @inlinable
    public static func isRestrictedName(_ text: String, maximumLength: Int) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= maximumLength, isAlphanumeric(first) else { return false }
        return text.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// A run of one or more decimal digits (no sign, no space) as a number; nil for
    /// anything else. A value past `Int64.max` reads as `Int64.max`: every caller asks
    /// "is it at least…" or "at most…", and the answer for such a number is that of the
    /// largest one (a byte position that large is past any file).
    @inlinable
    public static func saturatingDecimal(_ digits: some Collection<UInt8>) -> Int64? {
        guard !digits.isEmpty else { return nil }
        var value: Int64 = 0
        var saturated = false
        for byte in digits {
            guard isDigit(byte) else { return nil }
            if saturated { continue }
            let (shifted, overflowShift) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowAdd) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if overflowShift || overflowAdd {
                saturated = true
                value = .max
            } else {
                value = sum
            }
        }
        return value
    }

    /// Exactly `count` decimal digits as a number (fields of fixed width, as in dates).
    @inlinable
    public static func fixedDecimal(_ digits: some Collection<UInt8>, count: Int) -> Int? {
        guard digits.count == count, count <= 18 else { return nil }
        var value = 0
        for byte in digits {
            guard isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// Without the optional white space (spaces and tabs) around a header value or a list element.
    @inlinable
    public static func trimmingWhitespace(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isBlank($0) }), let last = bytes.lastIndex(where: { !isBlank($0) }) else {
            return bytes[bytes.endIndex...]
        }
        return bytes[first...last]
    }

    /// `text` without the optional white space (spaces and tabs) around it, as a header
    /// value is read (RFC 9110 5.5): NIO's decoder keeps the trailing white space.
    public static func trimmingWhitespace(_ text: String) -> String {
        String(decoding: trimmingWhitespace(Array(text.utf8)[...]), as: UTF8.self)
    }
}
