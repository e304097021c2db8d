/// Whether bytes are one JSON text as RFC 8259 defines it, and nothing else: no trailing
/// commas, comments or other extensions a lenient reader accepts (JSONSerialization
/// takes `{"a":1,}`, which no engine writes and the merger rightly refuses).
enum StrictJSON {
    /// Deeper nesting is refused, as JSON readers do (JSONSerialization stops at 512).
    static let maximumDepth = 512

    /// RFC 8259 §8.1: the text is UTF-8 (the standard library's validator decides).
    static func isValid(_ bytes: [UInt8]) -> Bool {
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        var index = skipWhitespace(bytes, 0)
        guard value(bytes, &index, depth: 0) else { return false }
        return skipWhitespace(bytes, index) == bytes.count
    }

    private static func value(_ b: [UInt8], _ i: inout Int, depth: Int) -> Bool {
        guard i < b.count, depth < maximumDepth else { return false }
        switch b[i] {
        case UInt8(ascii: "{"):
            i = skipWhitespace(b, i + 1)
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return true }
            while true {
                guard i < b.count, b[i] == UInt8(ascii: "\""), string(b, &i) else { return false }
                i = skipWhitespace(b, i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                i = skipWhitespace(b, i + 1)
                guard value(b, &i, depth: depth + 1) else { return false }
                i = skipWhitespace(b, i)
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: "}") { i += 1; return true }
                guard b[i] == UInt8(ascii: ",") else { return false }
                i = skipWhitespace(b, i + 1)
            }
        case UInt8(ascii: "["):
            i = skipWhitespace(b, i + 1)
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return true }
            while true {
                guard value(b, &i, depth: depth + 1) else { return false }
                i = skipWhitespace(b, i)
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: "]") { i += 1; return true }
                guard b[i] == UInt8(ascii: ",") else { return false }
                i = skipWhitespace(b, i + 1)
            }
        case UInt8(ascii: "\""):
            return string(b, &i)
        case UInt8(ascii: "t"): return literal("true", b, &i)
        case UInt8(ascii: "f"): return literal("false", b, &i)
        case UInt8(ascii: "n"): return literal("null", b, &i)
        default:
            return number(b, &i)
        }
    }

    private static func string(_ b: [UInt8], _ i: inout Int) -> Bool {
        i += 1
        while i < b.count {
            let byte = b[i]
            if byte == UInt8(ascii: "\"") { i += 1; return true }
            if byte < 0x20 { return false }
            if byte == UInt8(ascii: "\\") {
                guard i + 1 < b.count else { return false }
                let escaped = b[i + 1]
                if escaped == UInt8(ascii: "u") {
                    guard i + 5 < b.count, b[(i + 2)...(i + 5)].allSatisfy(isHexDigit) else { return false }
                    i += 6
                    continue
                }
                guard Array(#""\/bfnrt"#.utf8).contains(escaped) else { return false }
                i += 2
                continue
            }
            i += 1
        }
        return false
    }

    private static func number(_ b: [UInt8], _ i: inout Int) -> Bool {
        let start = i
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { return false }
        if b[i] == UInt8(ascii: "0") { i += 1 } else { while i < b.count, isDigit(b[i]) { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, isDigit(b[i]) else { return false }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { return false }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        return i > start
    }

    private static func literal(_ word: String, _ b: [UInt8], _ i: inout Int) -> Bool {
        let expected = Array(word.utf8)
        guard b.count - i >= expected.count, b[i..<(i + expected.count)].elementsEqual(expected) else { return false }
        i += expected.count
        return true
    }

    private static func skipWhitespace(_ b: [UInt8], _ start: Int) -> Int {
        var i = start
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        return i
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}
