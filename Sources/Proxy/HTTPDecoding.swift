import NIOCore
import NIOHTTP1

/// The one configuration of the agent's HTTP/1 decoders, for requests from clients and
/// for answers from engines and peers: what a head may cost before it is refused.
///
/// NIO's limits count the bytes llhttp reports, and llhttp does not report the
/// whitespace it skips (after a field's colon, between a request's target and its
/// version), while NIO's decoder keeps every byte from the start of the field it is in.
/// So a head of spaces grew the decoder's buffer without limit, and a head of empty
/// fields (`a:`) cost about 35 bytes of memory per byte sent. Both are bounded here:
/// the buffer a decoder may hold while a message is not whole, and the fields a head
/// may have.
public enum HTTPDecoding {
    /// Fields in one head (trailers included). Engines and Portainer send about 20.
    public static let maximumFieldCount = 256

    /// Bytes a decoder may hold undecoded: the 80 KiB a head may have, and what reads
    /// bring behind it before they stop (a pipelined request, bytes sent behind an
    /// upgrade request before the agent stops reading).
    public static let maximumBufferedBytes = 512 * 1024

    public static var limits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldCount = maximumFieldCount
        return limits
    }

    /// The decoder for a connection's requests.
    public static func requestDecoder() -> ByteToMessageHandler<HTTPRequestDecoder> {
        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits), maximumBufferSize: maximumBufferedBytes)
    }

    /// The decoder for an upstream connection's answers.
    static func responseDecoder() -> ByteToMessageHandler<HTTPResponseDecoder> {
        ByteToMessageHandler(
            HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward, limitConfiguration: limits),
            maximumBufferSize: maximumBufferedBytes)
    }
}
