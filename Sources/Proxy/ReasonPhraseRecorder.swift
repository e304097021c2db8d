import NIOCore

/// Reads the reason phrase of each response's status line as it goes by, in front of
/// the HTTP decoder, which keeps only the status code (and NIO then writes its own
/// phrase: the engine's `101 UPGRADED` would reach the client as `101 Switching
/// Protocols`). Relayed heads carry the upstream's own status line this way.
///
/// It looks at the first bytes of a response only: one request is in flight per
/// upstream connection, so after a final status line nothing is scanned until the
/// next exchange begins; interim (1xx) responses have no body, so the scan skips
/// their headers and reads the next status line.
final class ReasonPhraseRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Scan {
        case statusLine
        /// Inside an interim response's headers; `atLineStart` once a line has ended.
        case interimHeaders(atLineStart: Bool)
        case done
    }

    /// A status line longer than this is not recorded (the decoder refuses it anyway).
    static let maxLineLength = 4096

    private var scan = Scan.statusLine
    private var line: [UInt8] = []
    /// Phrases of heads the decoder has not delivered yet, oldest first.
    private var phrases: CircularBuffer<String> = []

    /// A new exchange begins on this connection: its response's status line comes next.
    func expectResponse() {
        scan = .statusLine
        line.removeAll(keepingCapacity: true)
        phrases.removeAll()
    }

    /// The phrase of the next head the decoder delivers, if it was recorded.
    func nextPhrase() -> String? {
        phrases.popFirst()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .done = scan {
            return context.fireChannelRead(data)
        }
        let buffer = unwrapInboundIn(data)
        var bytes = buffer.readableBytesView[...]
        while let byte = bytes.first {
            switch scan {
            case .done:
                return context.fireChannelRead(data)
            case .statusLine:
                // The line up to its newline goes in at once, not byte by byte.
                let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
                line.append(contentsOf: bytes[..<end].prefix(Self.maxLineLength + 1 - line.count))
                if line.count > Self.maxLineLength {
                    scan = .done
                    line.removeAll()
                } else if end < bytes.endIndex {
                    scan = record(line)
                    line.removeAll(keepingCapacity: true)
                    bytes = bytes[bytes.index(after: end)...]
                    continue
                }
                bytes = bytes[bytes.endIndex...]
            case .interimHeaders(let atLineStart):
                if byte == UInt8(ascii: "\n") {
                    scan = atLineStart ? .statusLine : .interimHeaders(atLineStart: true)
                } else if byte != UInt8(ascii: "\r") {
                    scan = .interimHeaders(atLineStart: false)
                }
                bytes = bytes.dropFirst()
            }
        }
        context.fireChannelRead(data)
    }

    /// Records `HTTP/1.x NNN phrase`, and says what to scan next.
    private func record(_ line: [UInt8]) -> Scan {
        var bytes = line[...]
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        // "HTTP/1.1 " + three digits, then a space and the phrase (which may be empty).
        guard bytes.count >= 12, bytes.starts(with: "HTTP/".utf8) else { return .done }
        let code = bytes.dropFirst(9).prefix(3)
        guard code.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return .done }
        let phrase = bytes.dropFirst(13)
        phrases.append(String(decoding: phrase, as: UTF8.self))
        let isInterim = code.first == UInt8(ascii: "1") && !code.elementsEqual("101".utf8)
        return isInterim ? .interimHeaders(atLineStart: true) : .done
    }
}

@available(*, unavailable)
extension ReasonPhraseRecorder: Sendable {}
