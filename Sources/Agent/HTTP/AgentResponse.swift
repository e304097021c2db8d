import HostFS
import NIOCore
import NIOHTTP1
import Proxy

/// An answer from one of the agent's own routes: bytes in memory, or a byte range
/// of an open file that is streamed from disk.
struct AgentResponse: Sendable {
    enum Body: Sendable {
        case bytes([UInt8])
        /// Already in a channel buffer (a merged cluster list): written without a copy.
        case buffer(ByteBuffer)
        /// The response owns the descriptor and closes it once streamed (or dropped).
        case file(ReadableFile, Range<Int64>)
    }

    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: Body

    init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = .bytes(body)
    }

    init(status: HTTPResponseStatus, headers: HTTPHeaders, buffer: ByteBuffer) {
        self.status = status
        self.headers = headers
        self.body = .buffer(buffer)
    }

    init(status: HTTPResponseStatus, headers: HTTPHeaders, file: ReadableFile, range: Range<Int64>) {
        self.status = status
        self.headers = headers
        self.body = .file(file, range)
    }

    var contentLength: Int64 {
        switch body {
        case .bytes(let bytes): return Int64(bytes.count)
        case .buffer(let buffer): return Int64(buffer.readableBytes)
        case .file(_, let range): return Int64(range.count)
        }
    }

    /// The head as written to the client: the agent's headers, the length (but on a
    /// `304`, which has no body and whose length would be the `200`'s, RFC 9110 8.6),
    /// and `Connection: close` when the connection ends after it.
    func head(closing: Bool) -> HTTPResponseHead {
        var headers = headers
        AgentHeaders.add(to: &headers)
        if status != .notModified { headers.replaceOrAdd(name: "Content-Length", value: String(contentLength)) }
        if closing { headers.replaceOrAdd(name: "Connection", value: "close") }
        return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    /// The body when it is in memory; nil for a file.
    var bodyBuffer: ByteBuffer? {
        switch body {
        case .bytes(let bytes): return ByteBuffer(bytes: bytes)
        case .buffer(let buffer): return buffer
        case .file: return nil
        }
    }

    static func empty(_ status: HTTPResponseStatus) -> AgentResponse {
        AgentResponse(status: status)
    }

    static func json(_ status: HTTPResponseStatus = .ok, _ body: [UInt8]) -> AgentResponse {
        AgentResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    static func error(_ error: AgentError) -> AgentResponse {
        .json(error.status, error.jsonBody)
    }
}

/// The headers every response carries, the engine's included.
enum AgentHeaders {
    /// Made once: `HTTPHeaders.add(name:value:)` would check each name again on every response.
    private static let fields = HTTPHeaders([
        (AgentHeaderName.agentVersion, AgentVersion.deckhand),
        (AgentHeaderName.apiVersion, AgentVersion.apiVersion),
        (AgentHeaderName.platform, AgentVersion.platform),
    ])

    static func add(to headers: inout HTTPHeaders) {
        headers.add(contentsOf: fields)
    }

    /// The same fields as the lines of a head, for a head relayed in bytes.
    static let lines: [UInt8] = fields.flatMap { Array("\($0.name): \($0.value)\r\n".utf8) }
}
