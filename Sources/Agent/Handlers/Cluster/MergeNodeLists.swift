import NIOCore
import Proxy

/// A node-local list asked of a cluster (`/containers/json`, `/images/json`,
/// `/volumes`, `/networks` without a target): every member's list, merged, each item
/// tagged with its node; the nodes that did not answer in time are named in
/// `X-PortainerAgent-Unreachable-Nodes`.
struct MergeNodeLists: AgentHandler {
    let aggregator: Aggregator
    let kind: AggregatedList

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        aggregator.aggregate(request.head, kind: kind, on: eventLoop).map { merged -> AgentResponse in
            guard merged.status == .ok else {
                return .error(AgentError(.badGateway, "No node answered", details: "unreachable: \(merged.unreachableNodes.joined(separator: ","))"))
            }
            var headers = merged.headers
            if !merged.unreachableNodes.isEmpty {
                headers.replaceOrAdd(name: AgentHeaderName.unreachableNodes, value: merged.unreachableNodes.joined(separator: ","))
            }
            return AgentResponse(status: .ok, headers: headers, buffer: merged.body)
        }
    }
}
