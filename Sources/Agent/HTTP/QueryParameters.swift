import ASCIIText

/// A request's query string, decoded as Go's `url.ParseQuery` does (percent escapes,
/// `+` as a space). The first value of a repeated key wins.
struct QueryParameters: Sendable {
    private var values: [String: String] = [:]

    /// Malformed escapes (`%zz`, a lone `%`) make the whole query invalid: the
    /// caller answers 400 rather than guessing what was meant.
    init?(uri: String) {
        guard let mark = uri.firstIndex(of: "?") else { return }
        let query = uri[uri.index(after: mark)...].prefix { $0 != "#" }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = Self.decode(parts[0]) else { return nil }
            guard let value = parts.count > 1 ? Self.decode(parts[1]) : "" else { return nil }
            if values[key] == nil { values[key] = value }
        }
    }

    subscript(name: String) -> String? { values[name] }

    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(ASCII.hexValue), let low = iterator.next().flatMap(ASCII.hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
