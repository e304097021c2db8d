import ASCIIText
import NIOCore

/// Merges the JSON lists that several engines returned into one, tagging every item
/// with the node it came from, without re-encoding anything an engine wrote: items
/// are found by scanning the bytes and copied through unchanged, so numbers, key
/// order and escapes stay exactly the engine's.
///
/// Every part is scanned in place (the engines' buffers, never copied to arrays) and
/// the answer is written once, into a buffer sized from the scan. The scan checks each
/// part to be valid JSON of the expected shape (`StrictJSON` for every value): one that
/// is not (a broken or hostile member) is left out and named in `Merged.refused`, so it
/// can neither break the merged list nor take the other nodes' parts down with it.
public enum JSONListMerger {
    public enum Failure: Error, Equatable, Sendable {
        case notAnArray
        case notAnObject
        case malformed(offset: Int)
        /// More elements than `maximumItems`.
        case tooManyItems
    }

    /// The most elements one part's list may hold. An engine's lists hold thousands;
    /// a member's 64 MiB of `{},` would be 22 million (each range kept costs 16 bytes).
    public static let maximumItems = 1 << 20

    /// The most bytes a merged answer may take. Tagging adds ~40 bytes and the node's
    /// name to each object, so a member's 64 MiB of `{},` would be a gigabyte of answer
    /// (and past 4 GiB, more than a `ByteBuffer` can hold: a trap). Parts are taken in
    /// node order while they fit; one that does not is left out and named, as a
    /// malformed one is.
    public static let maximumMergedBytes = 256 << 20

    /// A merged list, and the parts left out because they were not one (their indices).
    public struct Merged: Sendable {
        public var body: ByteBuffer
        public var refused: [Int]
    }

    /// One node's answer: its name and the response body.
    public struct Part: Sendable {
        public var nodeName: String
        public var body: ByteBuffer

        public init(nodeName: String, body: ByteBuffer) {
            self.nodeName = nodeName
            self.body = body
        }

        public init(nodeName: String, body: [UInt8]) {
            self.init(nodeName: nodeName, body: ByteBuffer(bytes: body))
        }

        /// What closes every object of this node: `"Portainer":{"Agent":{"NodeName":"…"}}}`.
        var tag: [UInt8] {
            var tag = Array(#""Portainer":{"Agent":{"NodeName":"#.utf8)
            JSONListMerger.appendString(nodeName, to: &tag)
            tag += Array("}}}".utf8)
            return tag
        }
    }

    /// `[…]` lists (containers, images, networks): every element, in node order.
    /// One node's whole-object answer, for `nodeDocument`.
    public struct NodePart: Sendable {
        public let nodeName: String
        public let role: String
        public let body: ByteBuffer
        /// Where `body`'s one JSON object lies, when `StrictJSON` checked it on the way in.
        fileprivate let checkedObject: Range<Int>?

        /// A part that `nodeDocument` checks.
        public init(nodeName: String, role: String, body: ByteBuffer) {
            self.nodeName = nodeName
            self.role = role
            self.body = body
            self.checkedObject = nil
        }

        /// A part checked here, once, as the answer arrives: nil unless `answer` is
        /// exactly one JSON object. `nodeDocument` then copies it without a second scan.
        public init?(nodeName: String, role: String, checking answer: ByteBuffer) {
            guard let object = StrictJSON.objectRange(answer) else { return nil }
            self.init(nodeName: nodeName, role: role, body: answer, object: object)
        }

        /// A node's answer as a part, checked here unless `CollectedResponse.checkObject`
        /// checked it already (where it arrived): nil unless its body is exactly one JSON
        /// object. `nodeDocument` then copies it without a second scan.
        public init?(nodeName: String, role: String, answer: CollectedResponse) {
            guard let object = answer.checkedObject else { self.init(nodeName: nodeName, role: role, checking: answer.body); return }
            self.init(nodeName: nodeName, role: role, body: answer.body, object: object)
        }

        private init(nodeName: String, role: String, body: ByteBuffer, object: Range<Int>) {
            self.nodeName = nodeName
            self.role = role
            self.body = body
            self.checkedObject = object
        }
    }

    /// `{"Nodes":[{"NodeName":…,"Role":…,"<field>":<the node's object>},…],"UnreachableNodes":[…]}`:
    /// each node's answer must be one valid JSON object (`StrictJSON`), and is copied
    /// through unchanged.
    ///
    /// Parts are taken, the smallest first, while the document stays within
    /// `maximumMergedBytes`; a node whose part does not fit is named among the
    /// unreachable instead, and the others keep their order. Returns the document and
    /// the unreachable nodes it names, sorted.
    public static func nodeDocument(
        _ parts: [NodePart], field: String, unreachable: [String], allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(Failure) -> (body: ByteBuffer, unreachable: [String]) {
        var unreachable = unreachable
        // Each part's bytes, its names escaped (at most 6 bytes each) and the keys around them.
        let sizes = parts.map { $0.body.readableBytes + ($0.nodeName.utf8.count + $0.role.utf8.count + field.utf8.count) * 6 + 64 }
        var size = 64 + unreachable.reduce(0) { $0 + $1.utf8.count * 6 + 3 }
        var fits = [Bool](repeating: false, count: parts.count)
        for index in parts.indices.sorted(by: { sizes[$0] < sizes[$1] }) {
            if sizes[index] <= maximumMergedBytes - size {
                size += sizes[index]
                fits[index] = true
            } else {
                unreachable.append(parts[index].nodeName)
                size += parts[index].nodeName.utf8.count * 6 + 3
            }
        }
        let fitting = parts.indices.filter { fits[$0] }.map { parts[$0] }
        unreachable.sort()
        var out = allocator.buffer(capacity: size)
        out.writeString("{\"Nodes\":[")
        for (index, part) in fitting.enumerated() {
            let object: Range<Int>
            if let checked = part.checkedObject {
                object = checked
            } else {
                object = try part.body.scan { bytes throws(Failure) -> Range<Int> in
                    let start = skipWhitespace(bytes, from: 0, to: bytes.count)
                    guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { throw .notAnObject }
                    guard let end = StrictJSON.valueEnd(bytes, from: start) else { throw .malformed(offset: start) }
                    try expectEnd(bytes, after: end, to: bytes.count)
                    return start..<end
                }
            }
            var prefix: [UInt8] = Array((index == 0 ? "{\"NodeName\":" : ",{\"NodeName\":").utf8)
            appendString(part.nodeName, to: &prefix)
            prefix += Array(",\"Role\":".utf8)
            appendString(part.role, to: &prefix)
            prefix += Array(",".utf8)
            appendString(field, to: &prefix)
            prefix += Array(":".utf8)
            out.writeBytes(prefix)
            out.writeImmutableBuffer(part.body.getSlice(at: part.body.readerIndex + object.lowerBound, length: object.count)!)
            out.writeString("}")
        }
        var tail: [UInt8] = Array("],\"UnreachableNodes\":[".utf8)
        for (index, name) in unreachable.enumerated() {
            if index > 0 { tail.append(UInt8(ascii: ",")) }
            appendString(name, to: &tail)
        }
        tail += Array("]}".utf8)
        out.writeBytes(tail)
        return (out, unreachable)
    }

    public static func mergeArrays(_ parts: [Part], allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Merged {
        var scanned = parts.map { part in
            try? part.body.scan { bytes throws(Failure) in
                return try elements(ofArrayIn: bytes, 0..<bytes.count)
            }
        }
        let size = fitToBudget(parts, &scanned, base: 2) { part, ranges in taggedSize(part, ranges) }
        let refused = scanned.indices.filter { scanned[$0] == nil }
        let parts = parts.indices.filter { scanned[$0] != nil }.map { parts[$0] }
        let found = scanned.compactMap { $0 }
        let tags = parts.map(\.tag)
        var out = allocator.buffer(capacity: size)
        out.writeInteger(UInt8(ascii: "["))
        var first = true
        for (part, (ranges, tag)) in zip(parts, zip(found, tags)) {
            part.body.withUnsafeReadableBytes { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                for range in ranges {
                    if !first { out.writeInteger(UInt8(ascii: ",")) }
                    first = false
                    writeTagged(bytes, range, tag: tag, to: &out)
                }
            }
        }
        out.writeInteger(UInt8(ascii: "]"))
        return Merged(body: out, refused: refused)
    }

    /// `{"Volumes": […], "Warnings": […]}`: volumes merged as lists are, warnings
    /// concatenated (`null` from a node counts as empty, as does a missing key).
    public static func mergeVolumes(_ parts: [Part], allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Merged {
        typealias Found = (volumes: [Range<Int>], warnings: [Range<Int>])
        var scanned = parts.map { part -> Found? in
            try? part.body.scan { bytes throws(Failure) -> Found in
                let whole = 0..<bytes.count
                var result: Found = ([], [])
                if let range = try value(forKey: "Volumes", inObject: bytes, whole), !isNull(bytes, range) {
                    result.volumes = try elements(ofArrayIn: bytes, range)
                }
                if let range = try value(forKey: "Warnings", inObject: bytes, whole), !isNull(bytes, range) {
                    result.warnings = try elements(ofArrayIn: bytes, range)
                }
                return result
            }
        }
        let size = fitToBudget(parts, &scanned, base: 64) { part, lists in
            // Warnings are copied as they are, each with a comma.
            let volumes = taggedSize(part, lists.volumes)
            guard !volumes.overflow else { return volumes }
            return volumes.partialValue.addingReportingOverflow(lists.warnings.count)
        }
        let refused = scanned.indices.filter { scanned[$0] == nil }
        let parts = parts.indices.filter { scanned[$0] != nil }.map { parts[$0] }
        let found = scanned.compactMap { $0 }
        let tags = parts.map(\.tag)
        var out = allocator.buffer(capacity: size)
        out.writeString(#"{"Volumes":["#)
        var first = true
        for (part, (lists, tag)) in zip(parts, zip(found, tags)) {
            part.body.withUnsafeReadableBytes { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                for range in lists.volumes {
                    if !first { out.writeInteger(UInt8(ascii: ",")) }
                    first = false
                    writeTagged(bytes, range, tag: tag, to: &out)
                }
            }
        }
        out.writeString(#"],"Warnings":"#)
        if found.allSatisfy({ $0.warnings.isEmpty }) {
            out.writeString("null")
        } else {
            out.writeInteger(UInt8(ascii: "["))
            first = true
            for (part, lists) in zip(parts, found) {
                part.body.withUnsafeReadableBytes { raw in
                    for range in lists.warnings {
                        if !first { out.writeInteger(UInt8(ascii: ",")) }
                        first = false
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range]))
                    }
                }
            }
            out.writeInteger(UInt8(ascii: "]"))
        }
        out.writeInteger(UInt8(ascii: "}"))
        return Merged(body: out, refused: refused)
    }

    /// What `part`'s elements at `ranges` take in the answer: its bytes (an upper bound
    /// on theirs), a comma each, and a tag for each object.
    static func taggedSize(_ part: Part, _ ranges: [Range<Int>]) -> (partialValue: Int, overflow: Bool) {
        let objects = part.body.withUnsafeReadableBytes { raw in
            ranges.reduce(0) { $0 + (raw[$1.lowerBound] == UInt8(ascii: "{") ? 1 : 0) }
        }
        let (tags, overflow) = objects.multipliedReportingOverflow(by: part.tag.count + 1)
        guard !overflow else { return (0, true) }
        let (withBody, overflowed) = tags.addingReportingOverflow(part.body.readableBytes)
        guard !overflowed else { return (0, true) }
        return withBody.addingReportingOverflow(ranges.count)
    }

    /// The answer's size once the scanned parts that fit `maximumMergedBytes` are in,
    /// the smallest first: a member that answers a huge list can only leave itself out,
    /// never the ordinary lists of the others. The other parts' scans become nil, so
    /// they are refused.
    static func fitToBudget<Found>(
        _ parts: [Part], _ scanned: inout [Found?], base: Int, size: (Part, Found) -> (partialValue: Int, overflow: Bool)
    ) -> Int {
        var sizes: [(index: Int, size: Int)] = []
        for index in scanned.indices {
            guard let found = scanned[index] else { continue }
            let (partSize, overflow) = size(parts[index], found)
            if overflow { scanned[index] = nil } else { sizes.append((index, partSize)) }
        }
        var total = base
        for (index, partSize) in sizes.sorted(by: { $0.size < $1.size }) {
            guard partSize <= maximumMergedBytes - total else {
                scanned[index] = nil
                continue
            }
            total += partSize
        }
        return total
    }

    /// An object gets the node's tag as its last member; anything else (engines only
    /// send objects) is copied as it is.
    static func writeTagged(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, tag: [UInt8], to out: inout ByteBuffer) {
        let raw = UnsafeRawBufferPointer(bytes)
        let closing = range.upperBound - 1
        guard bytes[range.lowerBound] == UInt8(ascii: "{"), bytes[closing] == UInt8(ascii: "}") else {
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range]))
            return
        }
        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range.lowerBound..<closing]))
        // `{}` (or `{ }`) takes the tag without a comma before it.
        if skipWhitespace(bytes, from: range.lowerBound + 1, to: closing) < closing {
            out.writeInteger(UInt8(ascii: ","))
        }
        out.writeBytes(tag)
    }

    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20:
                out += Array("\\u00".utf8)
                HexEncoding.append(byte, to: &out)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: Scanning
    //
    // Over the body's own bytes; a range is always within `bytes`, and every read
    // below checks its index against the range's end first. The containers' grammar is
    // checked here, and every value and key by `StrictJSON`, in the same pass: a part
    // that scans is valid JSON.

    /// The ranges of the elements of the array that fills `whole` (whitespace around it allowed).
    static func elements(ofArrayIn bytes: UnsafeBufferPointer<UInt8>, _ whole: Range<Int>) throws(Failure) -> [Range<Int>] {
        let end = whole.upperBound
        var index = skipWhitespace(bytes, from: whole.lowerBound, to: end)
        guard index < end, bytes[index] == UInt8(ascii: "[") else { throw .notAnArray }
        index = skipWhitespace(bytes, from: index + 1, to: end)
        var ranges: [Range<Int>] = []
        if index < end, bytes[index] == UInt8(ascii: "]") {
            try expectEnd(bytes, after: index + 1, to: end)
            return ranges
        }
        while true {
            let start = index
            let valueEnd = try skipValue(bytes, from: index, to: end)
            guard ranges.count < maximumItems else { throw .tooManyItems }
            ranges.append(start..<valueEnd)
            index = skipWhitespace(bytes, from: valueEnd, to: end)
            guard index < end else { throw .malformed(offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index = skipWhitespace(bytes, from: index + 1, to: end)
            } else if bytes[index] == UInt8(ascii: "]") {
                try expectEnd(bytes, after: index + 1, to: end)
                return ranges
            } else {
                throw .malformed(offset: index)
            }
        }
    }

    /// The range of the value of `key` among the members of the object that fills `whole`, if present.
    static func value(forKey key: String, inObject bytes: UnsafeBufferPointer<UInt8>, _ whole: Range<Int>) throws(Failure) -> Range<Int>? {
        let end = whole.upperBound
        var index = skipWhitespace(bytes, from: whole.lowerBound, to: end)
        guard index < end, bytes[index] == UInt8(ascii: "{") else { throw .notAnObject }
        index = skipWhitespace(bytes, from: index + 1, to: end)
        if index < end, bytes[index] == UInt8(ascii: "}") {
            try expectEnd(bytes, after: index + 1, to: end)
            return nil
        }
        let wanted = Array(key.utf8)
        var found: Range<Int>?
        while true {
            guard index < end, bytes[index] == UInt8(ascii: "\"") else { throw .malformed(offset: index) }
            let keyEnd = try skipString(bytes, from: index, to: end)
            let name = UnsafeBufferPointer(rebasing: bytes[(index + 1)..<(keyEnd - 1)])
            index = skipWhitespace(bytes, from: keyEnd, to: end)
            guard index < end, bytes[index] == UInt8(ascii: ":") else { throw .malformed(offset: index) }
            index = skipWhitespace(bytes, from: index + 1, to: end)
            let valueEnd = try skipValue(bytes, from: index, to: end)
            if found == nil, name.elementsEqual(wanted) { found = index..<valueEnd }
            index = skipWhitespace(bytes, from: valueEnd, to: end)
            guard index < end else { throw .malformed(offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index = skipWhitespace(bytes, from: index + 1, to: end)
            } else if bytes[index] == UInt8(ascii: "}") {
                try expectEnd(bytes, after: index + 1, to: end)
                return found
            } else {
                throw .malformed(offset: index)
            }
        }
    }

    /// Where the JSON value starting at `start` ends, within `end`; it must be valid
    /// JSON (`StrictJSON`, whose nesting is kept on the heap, so deep input cannot
    /// exhaust the stack).
    static func skipValue(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) throws(Failure) -> Int {
        guard start < end, let valueEnd = StrictJSON.valueEnd(bytes, from: start), valueEnd <= end else { throw .malformed(offset: start) }
        return valueEnd
    }

    /// Where the string starting at the quote `start` ends (just past its closing quote); it must be valid JSON.
    static func skipString(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) throws(Failure) -> Int {
        guard start < end, bytes[start] == UInt8(ascii: "\""), let stringEnd = StrictJSON.valueEnd(bytes, from: start), stringEnd <= end else {
            throw .malformed(offset: start)
        }
        return stringEnd
    }

    static func skipWhitespace(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
        var index = start
        while index < end, isWhitespace(bytes[index]) { index += 1 }
        return index
    }

    static func expectEnd(_ bytes: UnsafeBufferPointer<UInt8>, after index: Int, to end: Int) throws(Failure) {
        let rest = skipWhitespace(bytes, from: index, to: end)
        guard rest == end else { throw .malformed(offset: rest) }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    static func isNull(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        UnsafeBufferPointer(rebasing: bytes[range]).elementsEqual("null".utf8)
    }
}

extension ByteBuffer {
    /// Runs `body` over the readable bytes, typed as bytes.
    fileprivate func scan<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws(JSONListMerger.Failure) -> Result) throws(JSONListMerger.Failure) -> Result {
        let result: Swift.Result<Result, JSONListMerger.Failure> = withUnsafeReadableBytes { raw in
            do throws(JSONListMerger.Failure) {
                return .success(try body(raw.bindMemory(to: UInt8.self)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
