import Foundation
@testable import Agent
import Testing

/// The console's output decoder against Python's UTF-8 decoder (errors='replace'),
/// which substitutes maximal subparts as browsers do: every stream split at every byte.
@Suite("UTF-8 stream decoding")
struct UTF8StreamDecoderTests {
    static let streams: [[UInt8]] = [
        Array("plain ascii".utf8),
        Array("h\u{E9}llo \u{20AC} \u{1F600} \u{4E16}\u{754C}".utf8),
        [0xFF, 0xFE, 0x41],                           // never UTF-8
        [0xC3, 0x28, 0xC3],                           // a lead without its continuation, twice
        [0xE0, 0x80, 0x80, 0xE0, 0xA0],               // an overlong form, then a cut three-byte start
        [0xED, 0xA0, 0x80, 0xED, 0x9F, 0xBF],         // a surrogate, then U+D7FF
        [0xF0, 0x9F, 0x98, 0x41, 0xF4, 0x90, 0x80, 0x80, 0xF0, 0x9F, 0x98],  // cut emoji, past U+10FFFF, cut at the end
        [0x80, 0xBF, 0xC2, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x90, 0x8D, 0x88],
    ]

    @Test("split at every byte, the text equals Python's decoding of the whole", arguments: streams)
    func everySplit(stream: [UInt8]) throws {
        let expected = try ConsoleTests.pythonDecoded(stream)
        for cut in 0...stream.count {
            var decoder = UTF8StreamDecoder()
            let text = decoder.decode(stream[..<cut]) + decoder.decode(stream[cut...]) + decoder.finish()
            #expect(Array(text.utf8) == expected, "cut at \(cut): \(text.debugDescription)")
        }
    }

    @Test("one byte at a time, the same")
    func byteByByte() throws {
        let stream = Self.streams.flatMap { $0 }
        var decoder = UTF8StreamDecoder()
        var text = ""
        for byte in stream { text += decoder.decode([byte]) }
        text += decoder.finish()
        #expect(Array(text.utf8) == (try ConsoleTests.pythonDecoded(stream)))
    }
}
