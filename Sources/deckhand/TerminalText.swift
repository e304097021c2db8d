import NIOCore
import Proxy

/// What an agent answers, made safe to print on the operator's terminal. The answer
/// may come from whoever holds the address (trust on first use checks nothing before
/// the request), so it must not be able to move the cursor, recolour, retitle the
/// window or set the clipboard with escape sequences.
enum TerminalText {
    /// `text` with every control character but newline and tab (C0, DEL, and C1, which
    /// some terminals read as ESC sequences) and every format character (bidi overrides
    /// and isolates, zero widths: they reorder or hide what a line shows) written as `\u{XX}`.
    static func safe(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if scalar == "\n" || scalar == "\t" || !isControl(scalar) {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return out
    }

    /// A JSON object body to print as it came, or nil when it is not one (`StrictJSON`).
    /// Valid JSON holds no C0 control raw but as whitespace: a carriage return there
    /// (which would return the cursor and let later text overwrite a line) is written
    /// as a space. DEL, C1 and format characters it may hold in strings only, where
    /// `\uXXXX` (a surrogate pair past U+FFFF) reads the same: so written, the text is
    /// the same JSON and prints inertly.
    static func json(_ body: [UInt8]) -> String? {
        guard StrictJSON.isObject(ByteBuffer(bytes: body)) else { return nil }
        var out = ""
        for scalar in String(decoding: body, as: UTF8.self).unicodeScalars {
            if scalar == "\r" {
                out += " "
            } else if isControl(scalar), scalar.value >= 0x7F {
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// C0, DEL, C1, and format characters (all of which are past U+007F).
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.generalCategory == .format
    }
}
