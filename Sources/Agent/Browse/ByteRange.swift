import ASCIIText

/// A `Range: bytes=…` header against a file of `size` bytes, read as RFC 9110 (14.1.2,
/// 14.2) says: a header that is not a single well-formed byte range is ignored (the
/// whole file, as a server may), one that starts at or past the end cannot be
/// satisfied (416), and one that ends past the end stops at the end. Positions are
/// digits of any length: one past `Int64.max` is simply past the end, never a trap.
enum ByteRange: Equatable {
    case whole
    case unsatisfiable
    case part(Range<Int64>)

    static func parse(_ header: String, size: Int64) -> ByteRange {
        let value = ASCII.trimmingWhitespace(Array(header.utf8)[...])
        // The unit is case-insensitive; one this server does not know is ignored.
        let unit = Array("bytes=".utf8)
        guard value.prefix(unit.count).map(ASCII.lowercased) == unit else { return .whole }
        // Empty list elements are allowed (RFC 9110 5.6.1); more than one range gets the whole file.
        let specs = value.dropFirst(unit.count).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            .map(ASCII.trimmingWhitespace).filter { !$0.isEmpty }
        guard specs.count == 1, let spec = specs.first, let dash = spec.firstIndex(of: UInt8(ascii: "-")) else { return .whole }
        let first = spec[..<dash], last = spec[(dash + 1)...]
        if first.isEmpty {
            // bytes=-N: the last N bytes, or the whole file when it is shorter.
            guard let count = ASCII.saturatingDecimal(last) else { return .whole }
            guard count > 0, size > 0 else { return .unsatisfiable }
            return .part(size - min(count, size)..<size)
        }
        guard let start = ASCII.saturatingDecimal(first) else { return .whole }
        if last.isEmpty {
            return start < size ? .part(start..<size) : .unsatisfiable
        }
        // last < first makes the range invalid, judged on the digits: both may be past Int64.max.
        guard let end = ASCII.saturatingDecimal(last), !isLess(last, first) else { return .whole }
        guard start < size else { return .unsatisfiable }
        // end + 1 cannot overflow: end is at most size - 1 here.
        return .part(start..<(min(end, size - 1) + 1))
    }

    /// Whether the digits `a` name a smaller number than the digits `b`, whatever their length.
    private static func isLess(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        let a = a.drop { $0 == UInt8(ascii: "0") }, b = b.drop { $0 == UInt8(ascii: "0") }
        return a.count != b.count ? a.count < b.count : a.lexicographicallyPrecedes(b)
    }
}
