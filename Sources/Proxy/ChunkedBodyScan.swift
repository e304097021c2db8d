import ASCIIText

/// How a response body passed on in bytes is framed.
public enum RawBody: Equatable, Sendable {
    case length(Int64)
    case chunked
}

/// Follows a chunked body (RFC 9112 §7.1) byte by byte without decoding it, to find
/// where it ends: a relay passes the chunks on as they came. Strict: a size is 1 to 15
/// hex digits with no extension, every line ends with CRLF, and the last chunk has no
/// trailer fields (a head announcing a `Trailer` is left to the decoder). Anything
/// else is `.malformed`, and the answer cannot be completed.
struct ChunkedBodyScan {
    enum Outcome: Equatable {
        /// Every byte given belongs to the body, which goes on.
        case more
        /// The body ends after this many of the bytes given.
        case ended(at: Int)
        case malformed
    }

    private enum State {
        case size(value: UInt64, digits: Int)
        case sizeLF(UInt64)
        case data(remaining: UInt64)
        case dataCR
        case dataLF
        case lastCR
        case lastLF
    }

    private var state = State.size(value: 0, digits: 0)

    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch state {
            case .size(let value, let digits):
                if byte == UInt8(ascii: "\r"), digits > 0 {
                    state = .sizeLF(value)
                } else if let digit = ASCII.hexValue(byte), digits < 15 {
                    state = .size(value: value << 4 | UInt64(digit), digits: digits + 1)
                } else {
                    return .malformed
                }
            case .sizeLF(let size):
                guard byte == UInt8(ascii: "\n") else { return .malformed }
                state = size == 0 ? .lastCR : .data(remaining: size)
            case .data(let remaining):
                let taken = min(remaining, UInt64(bytes.count - index))
                index += Int(taken)
                state = taken == remaining ? .dataCR : .data(remaining: remaining - taken)
                continue
            case .dataCR:
                guard byte == UInt8(ascii: "\r") else { return .malformed }
                state = .dataLF
            case .dataLF:
                guard byte == UInt8(ascii: "\n") else { return .malformed }
                state = .size(value: 0, digits: 0)
            case .lastCR:
                guard byte == UInt8(ascii: "\r") else { return .malformed }
                state = .lastLF
            case .lastLF:
                guard byte == UInt8(ascii: "\n") else { return .malformed }
                return .ended(at: index + 1)
            }
            index += 1
        }
        return .more
    }
}
