import NIOHTTP1
import Proxy

/// Where a request goes in a cluster: another node, a manager, every node, or this
/// node the ordinary way. A pure decision on the head and the membership; the
/// connection carries it out like any other `RoutePlan`.
enum ClusterDispatch {
    /// The plan for `head` when it is not this node's to serve the ordinary way, else nil.
    static func plan(
        for head: HTTPRequestHead, route: Route, cluster: ClusterMembership, local: NodeIdentity, aggregator: Aggregator?
    ) -> RoutePlan? {
        // A request another agent sent here is served here, never sent on again (with
        // a secret, its proof was checked before: `RequestIntake`).
        let forwarded = head.headers.contains(name: AgentHeaderName.hop)
        switch Router.scope(for: route, method: head.method, uri: head.uri, headers: head.headers) {
        case .node(let name) where name != local.name:
            guard !forwarded else {
                return .refuse(AgentError(.badGateway, "This agent runs on node \(local.name), not on \(name)", details: "cluster membership changed"))
            }
            guard let member = cluster.member(named: name) else {
                return .refuse(AgentError(.notFound, "No agent found for node \(name)", details: "known nodes: \(cluster.members.map(\.nodeName).joined(separator: ", "))"))
            }
            guard cluster.recipients(for: head.headers)(member) else {
                return .refuse(AgentError(.forbidden, "Invalid request signature", details: "the agent on node \(name) did not prove the secret the request is signed with"))
            }
            return .forward(cluster.forwarded(head, to: member), to: cluster.pool(for: member), flushesAtEnd: false)
        case .manager where !local.isManager && !forwarded:
            guard let manager = cluster.remoteManager(for: head.headers) else {
                return .refuse(AgentError(.serviceUnavailable, "No manager agent is reachable from node \(local.name)"))
            }
            return .forward(cluster.forwarded(head, to: manager), to: cluster.pool(for: manager), flushesAtEnd: false)
        case .aggregate(let kind) where !forwarded:
            guard let aggregator else { return nil }
            return .answer(MergeNodeLists(aggregator: aggregator, kind: kind), collectsBody: false)
        default:
            if forwarded, route == .engine, head.headers.first(name: AgentHeaderName.hop) == Aggregator.listPartHop {
                // This node's part of another agent's aggregated list: that agent reads
                // it whole, so it goes back in one write, not one per engine read.
                return .forward(ForwardedHeaders.engineRequest(from: head), to: nil, flushesAtEnd: true)
            }
            return nil
        }
    }
}
