import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

// Where a request goes in a cluster: another node, a manager, or every node.
extension ConnectionHandler {
    /// Sends the request where its cluster scope says, unless that is this node.
    /// Returns false when the request is this node's to serve the ordinary way.
    func dispatchInCluster(
        _ head: HTTPRequestHead, route: Route, cluster: ClusterMembership, local: NodeIdentity, context: ChannelHandlerContext
    ) -> Bool {
        // A request another agent sent here is served here, never sent on again;
        // with a secret, only if that agent proves it holds it.
        let forwarded = head.headers.contains(name: AgentHeaderName.hop)
        if forwarded, !cluster.admitsForwarded(head, localName: local.name) {
            refuse(.unprovenPeer, context: context)
            return true
        }
        switch Router.scope(for: route, method: head.method, uri: head.uri, headers: head.headers) {
        case .node(let name) where name != local.name:
            guard !forwarded else {
                refuse(AgentError(.badGateway, "This agent runs on node \(local.name), not on \(name)", details: "cluster membership changed"), context: context)
                return true
            }
            guard let member = cluster.member(named: name) else {
                refuse(AgentError(.notFound, "No agent found for node \(name)", details: "known nodes: \(cluster.members.map(\.nodeName).joined(separator: ", "))"), context: context)
                return true
            }
            startRelay(head: cluster.forwarded(head, to: member), pool: cluster.pool(for: member), context: context)
            return true
        case .manager where !local.isManager && !forwarded:
            guard let manager = cluster.remoteManager() else {
                refuse(AgentError(.serviceUnavailable, "No manager agent is reachable from node \(local.name)"), context: context)
                return true
            }
            startRelay(head: cluster.forwarded(head, to: manager), pool: cluster.pool(for: manager), context: context)
            return true
        case .aggregate(let kind) where !forwarded:
            guard let aggregator = services.aggregator else { return false }
            let exchange = AgentExchange(
                request: AgentRequest(route: route, head: head), handler: MergeNodeLists(aggregator: aggregator, kind: kind), collecting: false)
            state = .agent(exchange)
            answer(exchange, context: context)
            return true
        default:
            if forwarded, route == .engine, head.headers.first(name: AgentHeaderName.hop) == Aggregator.listPartHop {
                // This node's part of another agent's aggregated list: that agent reads
                // it whole, so it goes back in one write, not one per engine read.
                startRelay(head: ForwardedHeaders.engineRequest(from: head), pool: services.engine, context: context, flushesAtEnd: true)
                return true
            }
            return false
        }
    }
}
