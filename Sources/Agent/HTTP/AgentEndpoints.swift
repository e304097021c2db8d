import NIOHTTP1

/// The agent's own routes: the thin layer that turns a routed request into a call
/// on the modules below and the result into a response.
struct AgentEndpoints: Sendable {
    let configuration: AgentConfiguration

    func respond(to route: Route, head: HTTPRequestHead) -> AgentResponse {
        switch route {
        case .ping:
            return .empty(.noContent)
        case .agents:
            return .error(AgentError(
                .serviceUnavailable,
                "Agent management is not available when running the agent on a standalone engine"))
        case .hostInfo, .browse, .console:
            return .error(AgentError(.notImplemented, "This agent route is not available in this Deckhand version"))
        case .methodNotAllowed(let allowed):
            var response = AgentResponse.error(AgentError(.methodNotAllowed, "Method not allowed, use \(allowed.rawValue)"))
            response.headers.add(name: "Allow", value: allowed.rawValue)
            return response
        case .engine:
            preconditionFailure("engine routes are relayed, not answered")
        }
    }
}
