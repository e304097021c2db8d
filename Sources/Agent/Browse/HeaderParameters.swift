import ASCIIText

/// A header value of the form `main; key=value; key="quoted value"`, as Content-Type and
/// Content-Disposition are written (RFC 7231, RFC 6266). Quoted strings take `\` as an
/// escape, as Go's mime.ParseMediaType does, so names read like the original agent's.
struct HeaderParameters: Equatable, Sendable {
    /// The part before the first `;`, trimmed and lowercased (`form-data`, `multipart/form-data`).
    let main: String
    /// The parameters by lowercased name; `name*` values (RFC 5987) are decoded into `name*`.
    let parameters: [String: String]

    /// Parses `value`; nil when a parameter has no `=` or a quoted string is not closed.
    init?(_ value: String) {
        var scanner = Array(value.utf8)[...]
        main = Self.takeUntilSemicolon(&scanner).lowercased()
        var parameters: [String: String] = [:]
        while !scanner.isEmpty {
            scanner = scanner.dropFirst() // the ';'
            Self.skipWhitespace(&scanner)
            if scanner.isEmpty { break } // a trailing ';' is tolerated
            guard let equals = scanner.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            let key = Self.trimmed(String(decoding: scanner[..<equals], as: UTF8.self)).lowercased()
            scanner = scanner[(equals + 1)...]
            Self.skipWhitespace(&scanner)
            let parsed: String
            if scanner.first == UInt8(ascii: "\"") {
                guard let quoted = Self.takeQuoted(&scanner) else { return nil }
                parsed = quoted
                Self.skipWhitespace(&scanner)
                guard scanner.isEmpty || scanner.first == UInt8(ascii: ";") else { return nil }
            } else {
                parsed = Self.takeUntilSemicolon(&scanner)
            }
            if key.isEmpty { return nil }
            if key.hasSuffix("*") {
                guard let decoded = Self.decodeExtendedValue(parsed) else { return nil }
                parameters[key] = decoded
            } else {
                parameters[key] = parsed
            }
        }
        self.parameters = parameters
    }

    private static func skipWhitespace(_ scanner: inout ArraySlice<UInt8>) {
        while let byte = scanner.first, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
            scanner = scanner.dropFirst()
        }
    }

    /// Up to (not including) the next `;`, trimmed.
    private static func takeUntilSemicolon(_ scanner: inout ArraySlice<UInt8>) -> String {
        let end = scanner.firstIndex(of: UInt8(ascii: ";")) ?? scanner.endIndex
        let text = String(decoding: scanner[..<end], as: UTF8.self)
        scanner = scanner[end...]
        return trimmed(text)
    }

    /// A quoted string starting at the scanner's `"`, with `\x` meaning `x`.
    private static func takeQuoted(_ scanner: inout ArraySlice<UInt8>) -> String? {
        var bytes: [UInt8] = []
        var index = scanner.index(after: scanner.startIndex)
        while index < scanner.endIndex {
            let byte = scanner[index]
            if byte == UInt8(ascii: "\"") {
                scanner = scanner[(index + 1)...]
                return String(decoding: bytes, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\"), index + 1 < scanner.endIndex {
                index += 1
            }
            bytes.append(scanner[index])
            index += 1
        }
        return nil
    }

    /// RFC 5987 `charset'language'percent-encoded`; only UTF-8 (and its ASCII subset).
    private static func decodeExtendedValue(_ value: String) -> String? {
        let pieces = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard pieces.count == 3 else { return nil }
        let charset = pieces[0].lowercased()
        guard charset == "utf-8" || charset == "us-ascii" else { return nil }
        var bytes: [UInt8] = []
        var utf8 = Array(pieces[2].utf8)[...]
        while let byte = utf8.first {
            utf8 = utf8.dropFirst()
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2,
                      let high = ASCII.hexValue(utf8[utf8.startIndex]),
                      let low = ASCII.hexValue(utf8[utf8.startIndex + 1]) else { return nil }
                bytes.append(high << 4 | low)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// `text` without leading and trailing spaces and tabs (no Foundation here).
    static func trimmed(_ text: String) -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isBlank($0) }),
              let last = text.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(text[first...last])
    }
}
