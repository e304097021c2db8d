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
    public var body: [UInt8]
    public var unreachableNodes: [String]
}

/// Sends one list request to every member at once (at most `concurrency` in flight),
/// each within the member timeout, and merges what comes back. A member that fails
/// or is late does not fail the request: it is named in `unreachableNodes`.
public struct Aggregator: Sendable {
    public static let targetHeader = "X-PortainerAgent-Target"
    /// Marks a request one agent forwarded to another, so it is never forwarded again.
    public static let hopHeader = "X-PortainerAgent-Deckhand-Hop"

    public let membership: ClusterMembership
    public let engine: UpstreamPool
    /// The most one member's list may weigh: aggregation is the one place bodies are held.
    public var memberBodyLimit = 64 << 20
    public var concurrency = 32

    public init(membership: ClusterMembership, engine: UpstreamPool) {
        self.membership = membership
        self.engine = engine
    }

    public func aggregate(_ head: HTTPRequestHead, kind: AggregatedList, on eventLoop: EventLoop) -> EventLoopFuture<AggregatedResponse> {
        let localName = membership.localNode?.name
        var members = membership.members
        if let localName, !members.contains(where: { $0.nodeName == localName }) {
            // This node answers for itself even before it has found its own address.
            members.append(ClusterMember(nodeName: localName, isManager: membership.localNode?.isManager ?? false, host: "", port: 0, version: ""))
        }
        let timeout = membership.settings.memberTimeout
        let requests: [@Sendable () -> EventLoopFuture<CollectedResponse>] = members.map { member in
            if member.nodeName == localName {
                var local = ForwardedHeaders.engineRequest(from: head)
                local.headers.remove(name: "Connection")
                return { [local] in engine.collect(local, on: eventLoop, limit: memberBodyLimit, timeout: timeout) }
            }
            var forwarded = head
            forwarded.headers.replaceOrAdd(name: Self.targetHeader, value: member.nodeName)
            forwarded.headers.replaceOrAdd(name: Self.hopHeader, value: "1")
            forwarded.headers.remove(name: "Connection")
            let pool = membership.pool(for: member)
            return { [forwarded] in pool.collect(forwarded, on: eventLoop, limit: memberBodyLimit, timeout: timeout) }
        }
        return Self.runBounded(requests, concurrency: concurrency, on: eventLoop).map { results in
            var parts: [JSONListMerger.Part] = []
            var unreachable: [String] = []
            var template: HTTPResponseHead?
            for (member, result) in zip(members, results) {
                switch result {
                case .success(let response) where response.head.status == .ok:
                    parts.append(JSONListMerger.Part(nodeName: member.nodeName, body: Array(response.body.readableBytesView)))
                    if template == nil || member.nodeName == localName { template = response.head }
                default:
                    unreachable.append(member.nodeName)
                }
            }
            guard let template else {
                return AggregatedResponse(status: .badGateway, headers: [:], body: [], unreachableNodes: unreachable)
            }
            let body: [UInt8]
            do {
                body = try kind == .volumes ? JSONListMerger.mergeVolumes(parts) : JSONListMerger.mergeArrays(parts)
            } catch {
                return AggregatedResponse(status: .badGateway, headers: [:], body: [], unreachableNodes: members.map(\.nodeName))
            }
            var headers = template.headers
            headers.remove(name: "Content-Length")
            headers.remove(name: "Transfer-Encoding")
            headers.remove(name: "Connection")
            headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            return AggregatedResponse(status: .ok, headers: headers, body: body, unreachableNodes: unreachable.sorted())
        }
    }

    /// Runs every request, at most `concurrency` at a time; results in request order.
    static func runBounded(
        _ requests: [@Sendable () -> EventLoopFuture<CollectedResponse>],
        concurrency: Int,
        on eventLoop: EventLoop
    ) -> EventLoopFuture<[Result<CollectedResponse, Error>]> {
        let promise = eventLoop.makePromise(of: [Result<CollectedResponse, Error>].self)
        let isolated = eventLoop.assumeIsolated()
        isolated.execute {
            var results = [Result<CollectedResponse, Error>?](repeating: nil, count: requests.count)
            var next = 0
            var finished = 0
            func launch() {
                guard next < requests.count else { return }
                let index = next
                next += 1
                requests[index]().hop(to: eventLoop).assumeIsolated().whenComplete { result in
                    results[index] = result
                    finished += 1
                    if finished == requests.count {
                        promise.succeed(results.map { $0! })
                    } else {
                        launch()
                    }
                }
            }
            if requests.isEmpty { return promise.succeed([]) }
            for _ in 0..<min(concurrency, requests.count) { launch() }
        }
        return promise.futureResult
    }
}
