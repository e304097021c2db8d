/// Turns a console's output, read in arbitrary chunks, into valid UTF-8 text for
/// websocket text frames (a browser hands a binary frame to Portainer's terminal as a
/// `Blob`, which it cannot show, and closes the socket on an invalid text frame).
///
/// A character cut between two reads is carried into the next chunk, never replaced;
/// bytes that can never be UTF-8 become U+FFFD, one per maximal invalid subpart, as
/// browsers and Python decode them (the Unicode Standard's recommended practice).
struct UTF8StreamDecoder {
    /// The start of a character whose remaining bytes have not arrived yet (at most 3).
    private var carried: [UInt8] = []

    /// The text of `chunk`, together with what was carried from the chunk before it.
    mutating func decode(_ chunk: some Collection<UInt8>) -> String {
        var bytes = carried
        bytes.append(contentsOf: chunk)
        let incomplete = Self.incompleteSuffixLength(bytes)
        carried = Array(bytes.suffix(incomplete))
        bytes.removeLast(incomplete)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The end of the stream: a character left incomplete is one U+FFFD.
    mutating func finish() -> String {
        defer { carried = [] }
        return String(decoding: carried, as: UTF8.self)
    }

    /// How many bytes at the end of `bytes` begin a well-formed character that needs
    /// more bytes (0 when the end is complete, or cannot become well-formed).
    static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        for back in 1...min(3, max(count, 1)) where back <= count {
            let byte = bytes[count - back]
            if byte & 0xC0 == 0x80 { continue }  // a continuation byte: the lead is further back
            let length: Int
            switch byte {
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: return 0
            }
            guard back < length else { return 0 }
            if back >= 2 {
                // The second byte's range depends on the lead (no overlongs, surrogates
                // or code points past U+10FFFF); the others are any continuation byte.
                let second = bytes[count - back + 1]
                let allowed: ClosedRange<UInt8>
                switch byte {
                case 0xE0: allowed = 0xA0...0xBF
                case 0xED: allowed = 0x80...0x9F
                case 0xF0: allowed = 0x90...0xBF
                case 0xF4: allowed = 0x80...0x8F
                default: allowed = 0x80...0xBF
                }
                guard allowed.contains(second) else { return 0 }
            }
            return back
        }
        return 0
    }
}
