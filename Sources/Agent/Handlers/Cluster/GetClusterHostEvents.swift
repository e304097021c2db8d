import Hardware
import NIOCore
import NIOHTTP1
import Proxy

/// `GET /v2/cluster/host/events`: every node's hardware changes in one stream
/// (`FleetHostEvents`), each line tagged with its node. With the target header (or
/// asked by another agent), or outside a Swarm, this node streams alone, as
/// `/v2/host/events` does.
struct GetClusterHostEvents: EventStreamHandler {
    let local: GetHostEvents
    let cluster: ClusterMembership?

    func open(_ request: AgentRequest, on eventLoop: EventLoop) -> Result<EventLineSource, AgentError> {
        let headers = request.head.headers
        let fanOut = headers.first(name: AgentHeaderName.target).map(\.isEmpty) ?? true && !headers.contains(name: AgentHeaderName.hop)
        guard fanOut, let cluster, let localNode = cluster.localNode, localNode.isSwarmMember else {
            return local.open(request, on: eventLoop)
        }
        let source: LocalHostEvents
        let since: Int64?
        do {
            since = try GetHostEvents.since(uri: request.head.uri)
            source = try local.source(since: since, on: eventLoop)
        } catch {
            return .failure(error)
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v2/host/events")
        for (name, value) in headers where GetClusterHostInfo.forwardedHeaders.contains(name.lowercased()) {
            head.headers.add(name: name, value: value)
        }
        let localName = localNode.name
        // Members that did not prove the secret the request is signed with are not asked.
        let mayReceive = cluster.recipients(for: headers)
        let membership = {
            cluster.peers.filter { $0.member.nodeName != localName && mayReceive($0.member) }.map { FleetHostEvents.Peer(member: $0.member, pool: $0.pool) }
        }
        let request = { [head] (member: ClusterMember, since: Int64) in
            var head = head
            head.uri += "?since=" + GetHostEvents.unixSeconds(since)
            var onward = cluster.forwarded(head, to: member)
            onward.headers.replaceOrAdd(name: AgentHeaderName.target, value: member.nodeName)
            return onward
        }
        var timing = FleetHostEvents.Timing()
        timing.open = cluster.settings.memberTimeout
        return .success(FleetHostEvents(
            local: source, membership: membership, request: request, since: since, generation: { cluster.peerKey?.generation ?? 0 },
            timing: timing, on: eventLoop))
    }
}
