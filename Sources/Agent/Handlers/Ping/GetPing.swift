import NIOCore

/// `GET /ping` (and `HEAD`): the public liveness check, 204 with the agent headers.
struct GetPing: AgentHandler {
    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        eventLoop.makeSucceededFuture(.empty(.noContent))
    }
}
