import NIOCore
import NIOHTTP1

/// A complete answer from one of the agent's own routes.
struct AgentResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: [UInt8]

    init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
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
    static func add(to headers: inout HTTPHeaders) {
        headers.add(name: "Portainer-Agent", value: AgentVersion.deckhand)
        headers.add(name: "Portainer-Agent-API-Version", value: AgentVersion.apiVersion)
        headers.add(name: "Portainer-Agent-Platform", value: AgentVersion.platform)
    }
}
