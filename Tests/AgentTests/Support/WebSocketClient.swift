import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A small websocket client over TLS for the console tests: the handshake by hand,
/// then NIOWebSocket's frame codec. Masks what it sends, as a browser does.
final class WebSocketClient: Sendable {
    let channel: Channel
    private let received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>
    private let closeCodeBox: NIOLockedValueBox<UInt16?>
    private let framesBox: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>

    private init(
        channel: Channel, received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>, closeCode: NIOLockedValueBox<UInt16?>,
        frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>
    ) {
        self.channel = channel
        self.received = received
        self.closeCodeBox = closeCode
        self.framesBox = frames
    }

    /// Every data frame the server sent so far, with its opcode, as a browser gets them.
    var dataFrames: [(opcode: WebSocketOpcode, payload: [UInt8])] {
        framesBox.withLockedValue { $0 }
    }

    /// The status code of the close frame the server sent, if any (1000 normal, 1001 going away).
    var closeCode: UInt16? {
        closeCodeBox.withLockedValue { $0 }
    }

    /// Connects and asks for the upgrade; returns the HTTP status, and a client when it was 101.
    static func connect(host: String, port: Int, path: String, headers: [String: String], hostHeader: String? = nil) throws -> (status: Int, client: WebSocketClient?) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let received = NIOLockedValueBox<(data: [UInt8], closed: Bool)>(([], false))
        let closeCode = NIOLockedValueBox<UInt16?>(nil)
        let frames = NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>([])
        let handshake = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int.self)
        // A promise dropped unfulfilled traps NIO's debug build, taking the whole test
        // run with it: one that fails to connect or write fails the handshake instead.
        do {
            return try connect(host: host, port: port, path: path, headers: headers, hostHeader: hostHeader, context: context,
                               received: received, closeCode: closeCode, frames: frames, handshake: handshake)
        } catch {
            handshake.fail(error)
            throw error
        }
    }

    private static func connect(
        host: String, port: Int, path: String, headers: [String: String], hostHeader: String?, context: NIOSSLContext,
        received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>, closeCode: NIOLockedValueBox<UInt16?>,
        frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>, handshake: EventLoopPromise<Int>
    ) throws -> (status: Int, client: WebSocketClient?) {
        let channel = try ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(HandshakeHandler(promise: handshake, received: received, closeCode: closeCode, frames: frames))
                }
            }
            .connect(host: host, port: port).wait()
        var request = "GET \(path) HTTP/1.1\r\nHost: \(hostHeader ?? host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try channel.writeAndFlush(channel.allocator.buffer(string: request)).wait()
        let status = try handshake.futureResult.wait()
        guard status == 101 else {
            try? channel.close().wait()
            return (status, nil)
        }
        return (status, WebSocketClient(channel: channel, received: received, closeCode: closeCode, frames: frames))
    }

    func send(_ text: String, opcode: WebSocketOpcode = .binary) throws {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: channel.allocator.buffer(string: text))
        try channel.writeAndFlush(frame).wait()
    }

    /// Waits until `condition` holds for what arrived, or `timeout`; returns it.
    func wait(timeout: TimeInterval = 10, until condition: (String, Bool) -> Bool) -> (text: String, closed: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let (data, closed) = received.withLockedValue { $0 }
            let text = String(decoding: data, as: UTF8.self)
            if condition(text, closed) || Date() > deadline { return (text, closed) }
            usleep(20_000)
        }
    }

    func close() {
        try? channel.close().wait()
    }

    /// Reads the 101 response head, then swaps itself for the frame codec.
    private final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Int>
        let received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>
        let closeCode: NIOLockedValueBox<UInt16?>
        let frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>
        var buffer = ByteBuffer()
        var done = false

        init(
            promise: EventLoopPromise<Int>, received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>, closeCode: NIOLockedValueBox<UInt16?>,
            frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>
        ) {
            self.promise = promise
            self.received = received
            self.closeCode = closeCode
            self.frames = frames
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            if done { return context.fireChannelRead(data) }
            buffer.writeBuffer(&chunk)
            let bytes = Array(buffer.readableBytesView)
            guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
            done = true
            let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            let rest = ByteBuffer(bytes: bytes[end.upperBound...])
            if status == 101 {
                let pipeline = context.pipeline.syncOperations
                try? pipeline.addHandlers([WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)), FrameCollector(received: received, closeCode: closeCode, frames: frames)])
                if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
                pipeline.removeHandler(context: context, promise: nil)
            }
            promise.succeed(status)
        }

        typealias InboundOut = ByteBuffer

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
    }

    private final class FrameCollector: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        let received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>
        let closeCode: NIOLockedValueBox<UInt16?>
        let frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>

        init(
            received: NIOLockedValueBox<(data: [UInt8], closed: Bool)>, closeCode: NIOLockedValueBox<UInt16?>,
            frames: NIOLockedValueBox<[(opcode: WebSocketOpcode, payload: [UInt8])]>
        ) {
            self.received = received
            self.closeCode = closeCode
            self.frames = frames
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .binary, .text, .continuation:
                let payload = Array(frame.unmaskedData.readableBytesView)
                received.withLockedValue { $0.data += payload }
                frames.withLockedValue { $0.append((frame.opcode, payload)) }
            case .connectionClose:
                var payload = frame.unmaskedData
                let code = payload.readWebSocketErrorCode().map { UInt16(webSocketErrorCode: $0) }
                closeCode.withLockedValue { $0 = code }
                received.withLockedValue { $0.closed = true }
                context.close(promise: nil)
            case .ping:
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            received.withLockedValue { $0.closed = true }
        }
    }
}
