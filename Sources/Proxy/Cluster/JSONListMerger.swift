/// Merges the JSON lists that several engines returned into one, tagging every item
/// with the node it came from, without re-encoding anything an engine wrote: items
/// are found by scanning the bytes and copied through unchanged, so numbers, key
/// order and escapes stay exactly the engine's.
public enum JSONListMerger {
    public enum Failure: Error, Equatable, Sendable {
        case notAnArray
        case notAnObject
        case malformed(offset: Int)
    }

    /// One node's answer: its name and the response body.
    public struct Part: Sendable {
        public var nodeName: String
        public var body: [UInt8]

        public init(nodeName: String, body: [UInt8]) {
            self.nodeName = nodeName
            self.body = body
        }
    }

    /// `[…]` lists (containers, images, networks): every element, in node order.
    public static func mergeArrays(_ parts: [Part]) throws(Failure) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        var first = true
        for part in parts {
            for element in try elements(ofArrayIn: part.body[...]) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                appendTagged(part.body[element], nodeName: part.nodeName, to: &out)
            }
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// `{"Volumes": […], "Warnings": […]}`: volumes merged as lists are, warnings
    /// concatenated (`null` from a node counts as empty, as does a missing key).
    public static func mergeVolumes(_ parts: [Part]) throws(Failure) -> [UInt8] {
        var volumes: [UInt8] = []
        var warnings: [UInt8] = []
        for part in parts {
            let object = part.body[...]
            if let range = try value(forKey: "Volumes", inObject: object), !isNull(object[range]) {
                for element in try elements(ofArrayIn: object[range]) {
                    if !volumes.isEmpty { volumes.append(UInt8(ascii: ",")) }
                    appendTagged(object[element], nodeName: part.nodeName, to: &volumes)
                }
            }
            if let range = try value(forKey: "Warnings", inObject: object), !isNull(object[range]) {
                for element in try elements(ofArrayIn: object[range]) {
                    if !warnings.isEmpty { warnings.append(UInt8(ascii: ",")) }
                    warnings += object[element]
                }
            }
        }
        var out = Array(#"{"Volumes":["#.utf8) + volumes + Array(#"],"Warnings":"#.utf8)
        out += warnings.isEmpty ? Array("null".utf8) : [UInt8(ascii: "[")] + warnings + [UInt8(ascii: "]")]
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// An object gets `"Portainer":{"Agent":{"NodeName":…}}` as its last member;
    /// anything else (engines only send objects) is copied as it is.
    static func appendTagged(_ element: ArraySlice<UInt8>, nodeName: String, to out: inout [UInt8]) {
        guard element.first == UInt8(ascii: "{"), element.last == UInt8(ascii: "}") else {
            out += element
            return
        }
        // Index ranges, not dropLast(): Sequence.dropLast copies into a new array.
        let closing = element.endIndex - 1
        out += element[element.startIndex..<closing]
        let inner = element[(element.startIndex + 1)..<closing]
        if inner.contains(where: { !isWhitespace($0) }) { out.append(UInt8(ascii: ",")) }
        out += Array(#""Portainer":{"Agent":{"NodeName":"#.utf8)
        appendString(nodeName, to: &out)
        out += Array("}}}".utf8)
    }

    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: Scanning

    /// The byte ranges of a top-level array's elements.
    static func elements(ofArrayIn bytes: ArraySlice<UInt8>) throws(Failure) -> [Range<Int>] {
        var index = skipWhitespace(bytes, from: bytes.startIndex)
        guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "[") else { throw .notAnArray }
        index = skipWhitespace(bytes, from: index + 1)
        var ranges: [Range<Int>] = []
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "]") {
            try expectEnd(bytes, after: index + 1)
            return ranges
        }
        while true {
            let start = index
            let end = try skipValue(bytes, from: index)
            ranges.append(start..<end)
            index = skipWhitespace(bytes, from: end)
            guard index < bytes.endIndex else { throw .malformed(offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index = skipWhitespace(bytes, from: index + 1)
            } else if bytes[index] == UInt8(ascii: "]") {
                try expectEnd(bytes, after: index + 1)
                return ranges
            } else {
                throw .malformed(offset: index)
            }
        }
    }

    /// The range of the value of `key` among a top-level object's members, if present.
    static func value(forKey key: String, inObject bytes: ArraySlice<UInt8>) throws(Failure) -> Range<Int>? {
        var index = skipWhitespace(bytes, from: bytes.startIndex)
        guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "{") else { throw .notAnObject }
        index = skipWhitespace(bytes, from: index + 1)
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "}") { return nil }
        let wanted = Array(key.utf8)
        var found: Range<Int>?
        while true {
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else { throw .malformed(offset: index) }
            let keyEnd = try skipString(bytes, from: index)
            let name = bytes[(index + 1)..<(keyEnd - 1)]
            index = skipWhitespace(bytes, from: keyEnd)
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") else { throw .malformed(offset: index) }
            index = skipWhitespace(bytes, from: index + 1)
            let valueEnd = try skipValue(bytes, from: index)
            if found == nil, name.elementsEqual(wanted) { found = index..<valueEnd }
            index = skipWhitespace(bytes, from: valueEnd)
            guard index < bytes.endIndex else { throw .malformed(offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index = skipWhitespace(bytes, from: index + 1)
            } else if bytes[index] == UInt8(ascii: "}") {
                try expectEnd(bytes, after: index + 1)
                return found
            } else {
                throw .malformed(offset: index)
            }
        }
    }

    /// Where the JSON value starting at `start` ends. Nesting is tracked with a
    /// counter, not recursion, so deep input cannot exhaust the stack.
    static func skipValue(_ bytes: ArraySlice<UInt8>, from start: Int) throws(Failure) -> Int {
        guard start < bytes.endIndex else { throw .malformed(offset: start) }
        var index = start
        var depth = 0
        repeat {
            guard index < bytes.endIndex else { throw .malformed(offset: index) }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index = try skipString(bytes, from: index)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard depth > 0 else { throw .malformed(offset: index) }
                depth -= 1
                index += 1
            default:
                if depth == 0 {
                    // A scalar: up to the next delimiter.
                    var end = index
                    while end < bytes.endIndex, !isWhitespace(bytes[end]),
                          bytes[end] != UInt8(ascii: ","), bytes[end] != UInt8(ascii: "]"), bytes[end] != UInt8(ascii: "}") {
                        end += 1
                    }
                    guard end > index else { throw .malformed(offset: index) }
                    return end
                }
                index += 1
            }
        } while depth > 0
        return index
    }

    /// Where the string starting at the quote `start` ends (just past its closing quote).
    static func skipString(_ bytes: ArraySlice<UInt8>, from start: Int) throws(Failure) -> Int {
        var index = start + 1
        while index < bytes.endIndex {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        throw .malformed(offset: start)
    }

    static func skipWhitespace(_ bytes: ArraySlice<UInt8>, from start: Int) -> Int {
        var index = start
        while index < bytes.endIndex, isWhitespace(bytes[index]) { index += 1 }
        return index
    }

    static func expectEnd(_ bytes: ArraySlice<UInt8>, after index: Int) throws(Failure) {
        let rest = skipWhitespace(bytes, from: index)
        guard rest == bytes.endIndex else { throw .malformed(offset: rest) }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    static func isNull(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.elementsEqual("null".utf8)
    }
}
