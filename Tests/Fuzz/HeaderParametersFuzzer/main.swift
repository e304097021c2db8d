import FuzzSupport
@testable import Agent

// HeaderParameters, what Content-Type and a part's Content-Disposition are read with.
// Input: a header value, parsed as it is; then the same bytes choose a value and up to
// four parameters (names of letters and digits, values of any text), written quoted
// with escapes, or as RFC 5987 `name*=UTF-8''…`: parsing what was written gives back
// what was chosen.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let text = String(decoding: input.bytes, as: UTF8.self)
    if let parsed = HeaderParameters(text) {
        require(parsed.main == HeaderParameters.trimmed(parsed.main), "main value \(parsed.main.debugDescription) is not trimmed")
        for key in parsed.parameters.keys {
            require(!key.isEmpty && key == HeaderParameters.trimmed(key), "parameter name \(key.debugDescription) of \(text.debugDescription) is empty or not trimmed")
        }
    }

    let main = token(&input, fallback: "form-data")
    var written = main
    var expected: [String: String] = [:]
    for _ in 0..<(input.choice(below: 5)) {
        var name = token(&input, fallback: "name")
        let value = input.text(separatedBy: 0)
        if input.byte() & 1 == 0 {
            // Escaped byte by byte, as the parser reads: a Character-wise replace missed a
            // quote that a combining mark joined into one Character (a finding of this harness).
            var escaped: [UInt8] = []
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { escaped.append(UInt8(ascii: "\\")) }
                escaped.append(byte)
            }
            written += "; \(name)=\"" + String(decoding: escaped, as: UTF8.self) + "\""
        } else {
            name += "*"
            written += "; \(name)=UTF-8''" + value.utf8.map { "%" + hex($0) }.joined()
        }
        expected[name.lowercased()] = value
    }
    let parsed = HeaderParameters(written)
    require(parsed?.main == main.lowercased(), "\(written.debugDescription) gave main \(String(describing: parsed?.main))")
    require(parsed?.parameters == expected, "\(written.debugDescription) gave \(String(describing: parsed?.parameters)), not \(expected)")
    return 0
}

/// One to eight letters and digits from the input (a name needs no quoting), or `fallback`.
func token(_ input: inout FuzzInput, fallback: String) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-".utf8)
    let length = input.choice(below: 9)
    guard length > 0 else { return fallback }
    let bytes = (0..<length).map { _ in alphabet[input.choice(below: alphabet.count)] }
    return bytes.first == UInt8(ascii: "-") ? fallback : String(decoding: bytes, as: UTF8.self)
}

func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
}

runLibFuzzer(testOneInput)
