import NIOCore
import Proxy

/// `GET /v2/cluster/member`: who this agent is, for a peer probing it (public, but
/// told only to the cluster's addresses, or to a peer that proves the secret).
struct GetClusterMember: AgentHandler {
    let cluster: ClusterMembership?

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let cluster, let node = cluster.localNode else {
            return eventLoop.makeSucceededFuture(.error(AgentError(.serviceUnavailable, "This agent is not part of a cluster")))
        }
        // What a probe needs, to whom it may be told; the version only to a proven peer.
        let admission = cluster.admitProbe(
            challenge: request.head.headers.first(name: AgentHeaderName.challenge), local: request.localAddress, remote: request.remoteAddress)
        return eventLoop.makeCompletedFuture {
            switch admission {
            case .refused:
                return .error(.notAPeer)
            case .clusterAddress:
                return .json(.ok, try AgentJSON.encode(MemberInfo(NodeName: node.name, NodeRole: node.role)))
            case .proven(let nonce):
                let body = try AgentJSON.encode(MemberInfo(NodeName: node.name, NodeRole: node.role, Version: AgentVersion.deckhand))
                var response = AgentResponse.json(.ok, body)
                if let peerKey = cluster.peerKey { response.headers.add(name: AgentHeaderName.proof, value: peerKey.answerProof(nonce: nonce, body: body)) }
                return response
            }
        }
    }
}
