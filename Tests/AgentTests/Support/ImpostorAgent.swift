import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
@testable import Agent

/// A TLS server that is not an agent but answers the membership probe as one would,
/// with whatever it is told to claim, and writes down every request it receives: the
/// agents' probes, and any request they would wrongly send it once it is a member.
final class ImpostorAgent: Sendable {
    struct Received: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]
    }

    let host: String
    let port: Int
    private let channel: Channel
    private let state: NIOLockedValueBox<State>

    private struct Answer {
        var status: HTTPResponseStatus
        var body: ByteBuffer
        var headers: [(String, String)]
    }

    private struct State {
        /// The probe answer's body; nil answers 503 (not claiming anything yet).
        var claim: String?
        var delay: TimeAmount = .zero
        var received: [Received] = []
        /// Answers for requests whose target contains the key.
        var answers: [String: Answer] = [:]
    }

    /// Listens on `host` (an ephemeral port). Other requests are answered 500, so that
    /// an agent that adopted it names it among the unreachable nodes.
    init(host: String) throws {
        let state = NIOLockedValueBox(State())
        let tls = try TLSIdentity.selfSigned(commonName: "impostor").serverContext()
        channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: host, port: 0).wait()
        self.host = host
        self.port = channel.localAddress?.port ?? 0
        self.state = state
    }

    var seed: String { "\(host):\(port)" }

    /// From now on, answers the probe with `body` (a member description) after `delay`.
    func claim(_ body: String, delay: TimeAmount = .zero) {
        state.withLockedValue {
            $0.claim = body
            $0.delay = delay
        }
    }

    /// From now on, answers a request whose target contains `target` with `status`,
    /// `body` (none on a 304) and `headers` besides its own.
    func answer(_ target: String, with body: ByteBuffer, status: HTTPResponseStatus = .ok, headers: [(String, String)] = []) {
        state.withLockedValue { $0.answers[target] = Answer(status: status, body: body, headers: headers) }
    }

    var received: [Received] { state.withLockedValue { $0.received } }

    /// Every request but the membership probe: what an adopted impostor is sent.
    var forwarded: [Received] { received.filter { $0.uri != "/v2/cluster/member" } }

    func stop() {
        try? channel.close().wait()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let (claim, delay, answer) = state.withLockedValue { state -> (String?, TimeAmount, Answer?) in
                state.received.append(Received(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }))
                return (state.claim, state.delay, state.answers.first { head.uri.contains($0.key) }?.value)
            }
            let isProbe = head.uri == "/v2/cluster/member"
            let status: HTTPResponseStatus = isProbe ? (claim == nil ? .serviceUnavailable : .ok) : answer?.status ?? .internalServerError
            let body = isProbe ? ByteBuffer(string: claim ?? "") : answer?.body ?? ByteBuffer(string: #"{"message":"impostor"}"#)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: isProbe ? delay : .zero) {
                let (handler, context) = loopBound.value
                var headers: HTTPHeaders = ["Content-Type": "application/json"]
                if status != .notModified { headers.add(name: "Content-Length", value: String(body.readableBytes)) }
                headers.add(name: "Connection", value: "keep-alive")
                for (name, value) in isProbe ? [] : answer?.headers ?? [] { headers.add(name: name, value: value) }
                context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                if status != .notModified { context.write(handler.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
