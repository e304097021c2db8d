/// The bytes of one fuzz input, read front to back by a harness that needs a few choices
/// (a method, split points) before the payload. Reading past the end yields zeros, so
/// every input, even an empty one, is a valid case.
public struct FuzzInput {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size))[...] } ?? []
    }

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes[...]
    }

    public var isEmpty: Bool { bytes.isEmpty }

    /// The next byte, or 0 past the end.
    public mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    /// A number in `0..<count` from the next byte.
    public mutating func choice(below count: Int) -> Int {
        Int(byte()) % count
    }

    /// Everything up to the next `separator` (consumed, not returned), or the rest.
    public mutating func field(separatedBy separator: UInt8 = UInt8(ascii: "\n")) -> ArraySlice<UInt8> {
        guard let end = bytes.firstIndex(of: separator) else {
            defer { bytes = [] }
            return bytes
        }
        defer { bytes = bytes[(end + 1)...] }
        return bytes[..<end]
    }

    /// `field` as text; bytes that are not UTF-8 become U+FFFD, as a server's String would.
    public mutating func text(separatedBy separator: UInt8 = UInt8(ascii: "\n")) -> String {
        String(decoding: field(separatedBy: separator), as: UTF8.self)
    }

    /// Whatever is left.
    public mutating func rest() -> ArraySlice<UInt8> {
        defer { bytes = [] }
        return bytes
    }
}
