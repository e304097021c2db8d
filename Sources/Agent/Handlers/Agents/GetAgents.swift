import NIOCore
import Proxy

/// `GET /agents`: the cluster's members, as Portainer lists them.
struct GetAgents: AgentHandler {
    let cluster: ClusterMembership?

    private struct Agent: Encodable {
        var IPAddress: String
        var Port: String
        var NodeName: String
        var NodeRole: String
    }

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let cluster, cluster.localNode?.isSwarmMember == true else {
            return eventLoop.makeSucceededFuture(.error(AgentError(
                .serviceUnavailable,
                "Agent management is not available when running the agent on a standalone engine")))
        }
        let agents = cluster.members.map { Agent(IPAddress: $0.host, Port: String($0.port), NodeName: $0.nodeName, NodeRole: $0.role) }
        return eventLoop.makeCompletedFuture { .json(.ok, try AgentJSON.encode(agents)) }
    }
}
