import Hardware
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy

/// `GET /v2/cluster/host/info`: every node's hardware in one answer. Each member is
/// asked for its own `/v2/host/info` at once (with the same `filters`, applied on the
/// node, so that only matching items cross the network), each within the member
/// timeout (nodes the `node` filter leaves out are not asked); nodes that did not answer are named in `UnreachableNodes` and in
/// `X-PortainerAgent-Unreachable-Nodes`, never silently missing. With the target
/// header (or asked by another agent), this node answers alone, in the same shape.
struct GetClusterHostInfo: AgentHandler {
    let local: GetHostInfo
    let cluster: ClusterMembership?
    let aggregator: Aggregator?
    /// Each member's last answer: members are asked for theirs conditionally, and one
    /// that has not changed is not sent again (`MemberAnswerCache`).
    let memberAnswers: MemberAnswerCache?
    /// Long polls that keep those answers known to be current, so that a member whose
    /// answer has not changed is not asked at all (`MemberWatches`).
    let memberWatches: MemberWatches?

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let query = request.head.uri.firstIndex(of: "?").map { String(request.head.uri[$0...]) } ?? ""
        // Bad filters are this request's fault, said once, not as every node failing.
        let filter: HostInfoFilter
        do {
            filter = try GetHostInfo.filter(uri: request.head.uri)
        } catch {
            return eventLoop.makeSucceededFuture(.error(error))
        }
        let localName = local.nodeName
        let localRole = cluster?.localNode?.role ?? "standalone"
        let fanOut = request.head.headers.first(name: AgentHeaderName.target).map(\.isEmpty) ?? true
            && !request.head.headers.contains(name: AgentHeaderName.hop)
        guard let aggregator, fanOut, cluster?.localNode?.isSwarmMember == true else {
            guard filter.includesNode(localName) else { return eventLoop.makeSucceededFuture(Self.document([])) }
            return localPart(request, on: eventLoop).map { part in
                Self.document([(localName, localRole, .success(part))])
            }
        }
        var peerHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v2/host/info" + query)
        for (name, value) in request.head.headers where Self.forwardedHeaders.contains(name.lowercased()) {
            peerHead.headers.add(name: name, value: value)
        }
        peerHead.headers.add(name: AgentHeaderName.hop, value: "1")
        // Nodes the `node` filter leaves out are not asked at all.
        // Each member's answer is checked where it arrives, on the loop that read it.
        return aggregator.gather(peerHead, including: { filter.includesNode($0.name) }, on: eventLoop, checkingObjects: true, reusing: memberAnswers, watching: memberWatches) {
            self.localPart(request, on: eventLoop)
        }.map { results in
            Self.document(results.map { ($0.node.name, $0.node.role, $0.result) })
        }
    }

    /// What a member's request carries on: the signature (the member checks it as its
    /// own) and nothing the client could use to steer it elsewhere.
    static let forwardedHeaders: Set<String> = [AgentHeaderName.publicKey.lowercased(), AgentHeaderName.signature.lowercased(), "host"]

    /// This node's inventory, as its own route answers it (whole: the client's
    /// `If-None-Match` is about a single node's answer, not this part of a document).
    private func localPart(_ request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<CollectedResponse> {
        var request = request
        request.head.headers.remove(name: "If-None-Match")
        return local.respond(to: request, on: eventLoop).map { response in
            CollectedResponse(head: HTTPResponseHead(version: .http1_1, status: response.status), body: response.bodyBuffer ?? ByteBuffer())
        }
    }

    static func document(_ parts: [(name: String, role: String, result: Result<CollectedResponse, Error>)]) -> AgentResponse {
        var answered: [JSONListMerger.NodePart] = []
        var unreachable: [String] = []
        var failure: AgentResponse?
        for part in parts {
            // Each answer is checked once (where it arrived, or here); the document copies it as it came.
            if case .success(let response) = part.result, response.head.status == .ok,
                let node = JSONListMerger.NodePart(nodeName: part.name, role: part.role, answer: response) {
                answered.append(node)
            } else if case .success(let response) = part.result, parts.count == 1, (400..<600).contains(response.head.status.code),
                StrictJSON.objectRange(response.body) != nil {
                // A node asked alone says why it could not answer (e.g. host management
                // off): an error status and a JSON object, as agents answer errors.
                // Anything else from it (a 200 that is not one object, a redirect) is
                // no answer, as with several nodes.
                failure = AgentResponse(status: response.head.status, headers: ["Content-Type": "application/json"], buffer: response.body)
            } else {
                unreachable.append(part.name)
            }
        }
        if let failure { return failure }
        guard let document = try? JSONListMerger.nodeDocument(answered, field: "HostInfo", unreachable: unreachable) else {
            return .error(AgentError(.badGateway, "A node answered with something that is not a JSON object"))
        }
        var response = AgentResponse(status: .ok, headers: ["Content-Type": "application/json"], buffer: document.body)
        if !document.unreachable.isEmpty {
            response.headers.add(name: AgentHeaderName.unreachableNodes, value: document.unreachable.joined(separator: ","))
        }
        return response
    }
}
