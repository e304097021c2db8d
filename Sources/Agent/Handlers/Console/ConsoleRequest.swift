import ASCIIText
import Crypto
import FoundationEssentials
import NIOCore
import NIOHTTP1
import Proxy

/// A console request (`GET /websocket/exec?id=…` or `/websocket/attach?id=…`),
/// validated before anything is upgraded, and the hijacked engine request that
/// serves it.
struct ConsoleRequest {
    let kind: ConsoleKind
    let id: String
    /// The client's `Sec-WebSocket-Key`, answered in the 101.
    let webSocketKey: String

    static let webSocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    init(kind: ConsoleKind, head: HTTPRequestHead) throws(AgentError) {
        guard let query = QueryParameters(uri: head.uri), let id = query["id"], !id.isEmpty else {
            throw AgentError(.badRequest, "The id query parameter is required")
        }
        switch kind {
        case .exec:
            guard Self.isExecID(id) else {
                throw AgentError(.badRequest, "Invalid exec id: expected 64 lowercase hexadecimal digits")
            }
        case .attach:
            guard ASCII.isRestrictedName(id, maximumLength: 255) else {
                throw AgentError(.badRequest, "Invalid container id or name")
            }
        }
        guard head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }),
              let key = head.headers.first(name: "Sec-WebSocket-Key"), !key.isEmpty,
              head.headers.first(name: "Sec-WebSocket-Version") == "13" else {
            throw AgentError(.badRequest, "Expected a websocket upgrade (Upgrade: websocket, Sec-WebSocket-Key, Sec-WebSocket-Version: 13)")
        }
        // The engine is sent a request the agent frames itself: a body the client sent
        // would go on behind it, read by the engine as a request of its own.
        if case .success(let body) = MessageFraming.requestBody(of: head), body != .none, body != .length(0) {
            throw AgentError(.badRequest, "A console request carries no body")
        }
        self.kind = kind
        self.id = id
        self.webSocketKey = key
    }

    /// An exec id as the engine makes them (64 random lowercase hex digits) and looks
    /// them up: whole, never by prefix or name.
    static func isExecID(_ id: String) -> Bool {
        id.utf8.count == 64 && id.utf8.allSatisfy(ASCII.isLowercaseHexDigit)
    }

    /// Asks the engine whether it knows the id, before any upgrade.
    var inspectHead: HTTPRequestHead {
        let path = kind == .exec ? "/exec/\(id)/json" : "/containers/\(id)/json"
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: ["Host": "docker"])
    }

    /// The hijacked engine request: exec start with a TTY, or attach to every stream.
    func engineRequest(allocator: ByteBufferAllocator) -> (HTTPRequestHead, ByteBuffer) {
        var headers: HTTPHeaders = ["Host": "docker", "Connection": "Upgrade", "Upgrade": "tcp"]
        switch kind {
        case .exec:
            let body = allocator.buffer(string: #"{"Detach":false,"Tty":true}"#)
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            return (HTTPRequestHead(version: .http1_1, method: .POST, uri: "/exec/\(id)/start", headers: headers), body)
        case .attach:
            headers.add(name: "Content-Length", value: "0")
            return (HTTPRequestHead(version: .http1_1, method: .POST, uri: "/containers/\(id)/attach?stdin=1&stdout=1&stderr=1&stream=1", headers: headers),
                    allocator.buffer(capacity: 0))
        }
    }

    /// The 101 that completes the client's websocket handshake.
    var upgradeResponse: HTTPResponseHead {
        let digest = Insecure.SHA1.hash(data: Array((webSocketKey + Self.webSocketGUID).utf8))
        var headers: HTTPHeaders = ["Upgrade": "websocket", "Connection": "Upgrade"]
        headers.add(name: "Sec-WebSocket-Accept", value: Data(digest).base64EncodedString())
        AgentHeaders.add(to: &headers)
        return HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
    }
}
