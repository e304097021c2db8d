import NIOCore
import NIOHTTP1

/// The node-local lists Portainer wants from every node at once.
public enum AggregatedList: Sendable, Equatable {
    /// `GET /containers/json`, `/images/json`, `/networks`: a JSON array.
    case array
    /// `GET /volumes`: `{"Volumes": [...], "Warnings": [...]}`.
    case volumes
}

/// One merged answer, and the nodes whose part is missing from it.
public struct AggregatedResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    public var unreachableNodes: [String]
}

/// Sends one list request to every member at once (at most `concurrency` in flight),
/// each within the member timeout, and merges what comes back. A member that fails
/// or is late does not fail the request: it is named in `unreachableNodes`.
public struct Aggregator: Sendable {
    /// The hop header's value on a member's part of an aggregated list (read whole by
    /// the agent that asked); other forwarded requests carry "1".
    public static let listPartHop = "list"

    public let membership: ClusterMembership
    public let engine: UpstreamPool
    /// The most one member's list may weigh: aggregation is the one place bodies are held.
    public var memberBodyLimit = 64 << 20
    public var concurrency = 32

    public init(membership: ClusterMembership, engine: UpstreamPool) {
        self.membership = membership
        self.engine = engine
    }

    /// Call on `eventLoop`, the client connection's: every call of the fan-out runs there.
    public func aggregate(_ head: HTTPRequestHead, kind: AggregatedList, on eventLoop: EventLoop) -> EventLoopFuture<AggregatedResponse> {
        eventLoop.assertInEventLoop()
        let (parts, localIndex) = participants()
        // The heads are built once per request; each peer's differs only by its target.
        var localHead = ForwardedHeaders.engineRequest(from: head)
        localHead.headers.remove(name: "Connection")
        var peerHead = head
        peerHead.headers.remove(name: "Connection")
        peerHead.headers.replaceOrAdd(name: AgentHeaderName.hop, value: Self.listPartHop)
        peerHead.headers.replaceOrAdd(name: AgentHeaderName.target, value: "")
        let (limit, timeout, engine) = (memberBodyLimit, membership.settings.memberTimeout, self.engine)
        let fanOut = FanOut(
            parts: parts, localIndex: localIndex, local: { engine.collect(localHead, on: eventLoop, limit: limit, timeout: timeout) },
            peerHead: peerHead, peerKey: membership.peerKey, limit: limit, timeout: timeout, eventLoop: eventLoop)
        return fanOut.run(concurrency: concurrency).map { results in
            Self.merge(results, from: parts.map(\.node), localIndex: localIndex, kind: kind, allocator: ByteBufferAllocator())
        }
    }

    /// Sends `peerHead` to every member (that `including` takes) but this node (targeted at it and signed for it,
    /// as list parts are) and asks `local` for this node's part; each within the member
    /// timeout, at most `concurrency` at a time. Results come back in member order, each
    /// with its node. Call on `eventLoop`, the client connection's.
    public func gather(
        _ peerHead: HTTPRequestHead, including: (ClusterNode) -> Bool = { _ in true }, on eventLoop: EventLoop,
        local: @escaping () -> EventLoopFuture<CollectedResponse>
    ) -> EventLoopFuture<[(node: ClusterNode, result: Result<CollectedResponse, Error>)]> {
        eventLoop.assertInEventLoop()
        var (parts, localIndex) = participants()
        let localNode = localIndex.map { parts[$0].node }
        parts = parts.filter { including($0.node) }
        localIndex = parts.firstIndex { $0.node == localNode }
        var head = peerHead
        head.headers.remove(name: "Connection")
        let fanOut = FanOut(
            parts: parts, localIndex: localIndex, local: local, peerHead: head, peerKey: membership.peerKey,
            limit: memberBodyLimit, timeout: membership.settings.memberTimeout, eventLoop: eventLoop)
        return fanOut.run(concurrency: concurrency).map { results in
            zip(parts, results).map { (node: $0.node, result: $1) }
        }
    }

    /// One node's part of a fan-out: the node, and the connections that reach it (its
    /// agent's, or this node's own engine).
    struct Participant {
        var node: ClusterNode
        var pool: UpstreamPool
    }

    /// Every member, this node included (answering for itself, through its engine, even
    /// before it has found its own address), and which one is this node.
    private func participants() -> (parts: [Participant], localIndex: Int?) {
        let local = membership.localNode
        var parts = membership.peers.map { Participant(node: $0.member.node, pool: $0.pool) }
        var localIndex = local.flatMap { local in parts.firstIndex { $0.node.name == local.name } }
        if let local, localIndex == nil {
            localIndex = parts.count
            parts.append(Participant(node: local.node, pool: engine))
        }
        return (parts, localIndex)
    }

    static func merge(
        _ results: [Result<CollectedResponse, Error>], from nodes: [ClusterNode], localIndex: Int?, kind: AggregatedList, allocator: ByteBufferAllocator
    ) -> AggregatedResponse {
        var parts: [JSONListMerger.Part] = []
        parts.reserveCapacity(nodes.count)
        var unreachable: [String] = []
        var template: HTTPResponseHead?
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let response) where response.head.status == .ok:
                parts.append(JSONListMerger.Part(nodeName: nodes[index].name, body: response.body))
                if template == nil || index == localIndex { template = response.head }
            default:
                unreachable.append(nodes[index].name)
            }
        }
        guard let template else {
            return AggregatedResponse(status: .badGateway, headers: [:], body: ByteBuffer(), unreachableNodes: unreachable)
        }
        let body: ByteBuffer
        do {
            body = try kind == .volumes ? JSONListMerger.mergeVolumes(parts, allocator: allocator) : JSONListMerger.mergeArrays(parts, allocator: allocator)
        } catch {
            return AggregatedResponse(status: .badGateway, headers: [:], body: ByteBuffer(), unreachableNodes: nodes.map(\.name))
        }
        var headers = template.headers
        headers.remove(name: "Content-Length")
        headers.remove(name: "Transfer-Encoding")
        headers.remove(name: "Connection")
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        return AggregatedResponse(status: .ok, headers: headers, body: body, unreachableNodes: unreachable.sorted())
    }
}

/// One aggregated request's calls, at most `concurrency` at a time, all on the
/// client's event loop (the pools hand out connections on it: no hops, no locks).
/// Results come back in member order.
private final class FanOut {
    private let parts: [Aggregator.Participant]
    private let localIndex: Int?
    private let local: () -> EventLoopFuture<CollectedResponse>
    private let peerHead: HTTPRequestHead
    private let peerKey: PeerKey?
    private let limit: Int
    private let timeout: TimeAmount
    private let eventLoop: EventLoop
    private let promise: EventLoopPromise<[Result<CollectedResponse, Error>]>
    private var results: [Result<CollectedResponse, Error>?]
    private var next = 0
    private var finished = 0

    init(
        parts: [Aggregator.Participant], localIndex: Int?, local: @escaping () -> EventLoopFuture<CollectedResponse>, peerHead: HTTPRequestHead,
        peerKey: PeerKey?, limit: Int, timeout: TimeAmount, eventLoop: EventLoop
    ) {
        self.parts = parts
        self.localIndex = localIndex
        self.local = local
        self.peerHead = peerHead
        self.peerKey = peerKey
        self.limit = limit
        self.timeout = timeout
        self.eventLoop = eventLoop
        self.promise = eventLoop.makePromise()
        self.results = Array(repeating: nil, count: parts.count)
    }

    func run(concurrency: Int) -> EventLoopFuture<[Result<CollectedResponse, Error>]> {
        let future = promise.futureResult
        if parts.isEmpty {
            promise.succeed([])
        } else {
            for _ in 0..<min(max(concurrency, 1), parts.count) { launch() }
        }
        return future
    }

    private func launch() {
        guard next < parts.count else { return }
        let index = next
        next += 1
        let call: EventLoopFuture<CollectedResponse>
        if index == localIndex {
            call = local()
        } else {
            var head = peerHead
            head.headers.replaceOrAdd(name: AgentHeaderName.target, value: parts[index].node.name)
            peerKey?.sign(&head, for: parts[index].node.name)
            call = parts[index].pool.collect(head, on: eventLoop, limit: limit, timeout: timeout)
        }
        call.assumeIsolated().whenComplete { result in
            self.results[index] = result
            self.finished += 1
            if self.finished == self.parts.count {
                self.promise.succeed(self.results.map { $0! })
            } else {
                self.launch()
            }
        }
    }
}
