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
    /// The event loops a large fan-out's member exchanges are spread over (see
    /// `FanOut`); empty: all on the client connection's loop.
    public let memberLoops: [EventLoop]
    /// Each loop a fan-out is spread over takes at least this many members: below it
    /// the hops to the loop and back cost more than the loop's share of the work saves.
    public var membersPerLoop = 4

    public init(membership: ClusterMembership, engine: UpstreamPool, memberLoops: [EventLoop] = []) {
        self.membership = membership
        self.engine = engine
        self.memberLoops = memberLoops
    }

    /// Call on `eventLoop`, the client connection's: every call of the fan-out runs there.
    public func aggregate(_ head: HTTPRequestHead, kind: AggregatedList, on eventLoop: EventLoop) -> EventLoopFuture<AggregatedResponse> {
        eventLoop.assertInEventLoop()
        let (parts, localIndex, excluded) = participants(for: head.headers)
        // The heads are built once per request; each peer's differs only by its target.
        var localHead = Self.bodiless(ForwardedHeaders.engineRequest(from: head))
        localHead.headers.remove(name: "Connection")
        var peerHead = Self.bodiless(head)
        peerHead.headers.remove(name: "Connection")
        peerHead.headers.replaceOrAdd(name: AgentHeaderName.hop, value: Self.listPartHop)
        peerHead.headers.replaceOrAdd(name: AgentHeaderName.target, value: "")
        let (limit, timeout, engine) = (memberBodyLimit, membership.settings.memberTimeout, self.engine)
        let fanOut = FanOut(
            members: MemberCalls(
                parts: parts, head: peerHead, peerKey: membership.peerKey, limit: limit, timeout: timeout, statusOnly: false, checkingObjects: false,
                answers: nil),
            localIndex: localIndex, local: { engine.collect(localHead, on: eventLoop, limit: limit, timeout: timeout) })
        return fanOut.run(on: loops(for: parts.count, from: eventLoop), concurrency: concurrency).map { results in
            Self.merge(
                results + excluded.map { _ in .failure(PeerRefusal.notHoldingSignedSecret) }, from: parts.map(\.node) + excluded,
                localIndex: localIndex, kind: kind, allocator: ByteBufferAllocator())
        }
    }

    /// Sends `peerHead` to every member (that `including` takes) but this node (targeted at it and signed for it,
    /// as list parts are) and asks `local` for this node's part; each within the member
    /// timeout, at most `concurrency` at a time. With `checkingObjects`, each member's
    /// answer (a 200) is checked to be one JSON object where it arrives, on the loop its
    /// exchange ran on (`CollectedResponse.checkObject`; see `FanOut`): not in series on
    /// the client's loop. Results come back in member order, each with its node; a
    /// member's answer carries its status and body, not its header fields
    /// (`UpstreamPool.collect`'s `statusOnly`). With `answers` (and `checkingObjects`),
    /// each member is asked conditionally for what it answered last, and a `304` is
    /// that answer (see `MemberAnswerCache`). Call on `eventLoop`, the client connection's.
    public func gather(
        _ peerHead: HTTPRequestHead, including: (ClusterNode) -> Bool = { _ in true }, on eventLoop: EventLoop, checkingObjects: Bool = false,
        reusing answers: MemberAnswerCache? = nil, watching watches: MemberWatches? = nil, local: @escaping () -> EventLoopFuture<CollectedResponse>
    ) -> EventLoopFuture<[(node: ClusterNode, result: Result<CollectedResponse, Error>)]> {
        eventLoop.assertInEventLoop()
        let (everyone, everyonesLocal, excluded) = participants(for: peerHead.headers)
        let localNode = everyonesLocal.map { everyone[$0].node }
        let parts = everyone.filter { including($0.node) }
        let notAsked = excluded.filter(including)
        var head = Self.bodiless(peerHead)
        head.headers.remove(name: "Connection")
        let answers = checkingObjects ? watches?.answers ?? answers : nil
        let watches = checkingObjects ? watches : nil
        // Members whose kept answer a live watch vouches for are not asked.
        let now = NIODeadline.now()
        let known: [CollectedResponse?] = parts.map { part in
            guard let watches, part.node != localNode, let key = part.key(uri: head.uri) else { return nil }
            return watches.current(key, now: now)
        }
        let asked = parts.indices.filter { known[$0] == nil }.map { parts[$0] }
        let calls = MemberCalls(
            parts: asked, head: head, peerKey: membership.peerKey, limit: memberBodyLimit, timeout: membership.settings.memberTimeout,
            statusOnly: true, checkingObjects: checkingObjects, answers: answers)
        let fanOut = FanOut(members: calls, localIndex: asked.firstIndex { $0.node == localNode }, local: local)
        return fanOut.run(on: loops(for: asked.count, from: eventLoop), concurrency: concurrency).map { results in
            var answered = results.makeIterator()
            let merged = zip(parts, known).map { part, known in
                (node: part.node, result: known.map { .success($0) } ?? answered.next()!)
            }
            // Each member asked and answered is watched from now on (unless it already is).
            if let watches {
                for (index, (part, result)) in zip(asked, results).enumerated() where part.node != localNode {
                    guard case .success(let answer) = result, answer.head.status == .ok, let key = part.key(uri: head.uri) else { continue }
                    watches.watch(
                        key, head: calls.head(for: index), pool: part.pool, on: eventLoop, limit: self.memberBodyLimit,
                        timeout: self.membership.settings.memberTimeout)
                }
            }
            return merged + notAsked.map { (node: $0, result: .failure(PeerRefusal.notHoldingSignedSecret)) }
        }
    }

    /// `head` as a fan-out sends it: alone, so without the fields that announce a
    /// body (a client's GET may carry one; an engine, as Go's server, would wait for it
    /// before answering, until the member timeout).
    static func bodiless(_ head: HTTPRequestHead) -> HTTPRequestHead {
        var head = head
        for name in ["Content-Length", "Transfer-Encoding", "Expect"] { head.headers.remove(name: name) }
        return head
    }

    /// The loops a fan-out to `count` members is spread over: the client's, `eventLoop`,
    /// first, then others of `memberLoops`, one loop per `membersPerLoop` members.
    private func loops(for count: Int, from eventLoop: EventLoop) -> [EventLoop] {
        let wanted = min(memberLoops.count, count / max(membersPerLoop, 1))
        guard wanted >= 2 else { return [eventLoop] }
        return [eventLoop] + memberLoops.lazy.filter { $0 !== eventLoop }.prefix(wanted - 1)
    }

    /// One node's part of a fan-out: the node, and the connections that reach it (its
    /// agent's, or this node's own engine).
    struct Participant: Sendable {
        var node: ClusterNode
        var pool: UpstreamPool
        /// A member's address; nil for this node's own part.
        var host: String? = nil
        var port = 0

        /// Where a member's answers to `uri` are kept; nil for this node's own part.
        func key(uri: String) -> MemberAnswerCache.Key? {
            host.map { MemberAnswerCache.Key(node: node.name, host: $0, port: port, uri: uri) }
        }
    }

    /// Every member that may be sent a request with `headers` (`ClusterMembership.recipients`),
    /// this node included (answering for itself, through its engine, even before it has
    /// found its own address), and which one is this node; and the members that may not
    /// (they are named as not answering, never silently left out).
    private func participants(for headers: HTTPHeaders) -> (parts: [Participant], localIndex: Int?, excluded: [ClusterNode]) {
        let local = membership.localNode
        let mayReceive = membership.recipients(for: headers)
        var parts: [Participant] = []
        var excluded: [ClusterNode] = []
        for peer in membership.peers {
            if peer.member.nodeName == local?.name || mayReceive(peer.member) {
                parts.append(Participant(node: peer.member.node, pool: peer.pool, host: peer.member.host, port: peer.member.port))
            } else {
                excluded.append(peer.member.node)
            }
        }
        var localIndex = local.flatMap { local in parts.firstIndex { $0.node.name == local.name } }
        if let local, localIndex == nil {
            localIndex = parts.count
            parts.append(Participant(node: local.node, pool: engine))
        }
        return (parts, localIndex, excluded)
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
        let merged = kind == .volumes ? JSONListMerger.mergeVolumes(parts, allocator: allocator) : JSONListMerger.mergeArrays(parts, allocator: allocator)
        // A node whose answer is not a list of JSON values is left out and named, as one that did not answer.
        unreachable += merged.refused.map { parts[$0].nodeName }
        guard let template, merged.refused.count < parts.count else {
            return AggregatedResponse(status: .badGateway, headers: [:], body: ByteBuffer(), unreachableNodes: unreachable.sorted())
        }
        // Only the engine's own fields: the head may be a member's (when this node's part
        // failed), and nothing else of it may reach the client.
        var headers = HTTPHeaders()
        for name in Self.engineFields {
            for value in template.headers[name] { headers.add(name: name, value: value) }
        }
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        return AggregatedResponse(status: .ok, headers: headers, body: merged.body, unreachableNodes: unreachable.sorted())
    }

    /// The fields of an engine's list answer that the merged answer carries on.
    static let engineFields = ["Api-Version", "Docker-Experimental", "Ostype", "Server", "Date"]
}

/// What a fan-out sends each member: the head, targeted at the member and signed for
/// it (as list parts are), within the member timeout, with at most `limit` bytes back;
/// whether the answers' header fields are wanted (lists take the engine's from one),
/// and whether each answer is checked to be one JSON object.
private struct MemberCalls: Sendable {
    let parts: [Aggregator.Participant]
    let head: HTTPRequestHead
    let peerKey: PeerKey?
    let limit: Int
    let timeout: TimeAmount
    let statusOnly: Bool
    let checkingObjects: Bool
    /// Each member's last answer to `head`, to ask for conditionally; nil unless `checkingObjects`.
    let answers: MemberAnswerCache?

    /// The head member `index` is sent: targeted at it and signed for it.
    func head(for index: Int) -> HTTPRequestHead {
        var head = head
        let node = parts[index].node.name
        head.headers.replaceOrAdd(name: AgentHeaderName.target, value: node)
        peerKey?.sign(&head, for: node)
        return head
    }

    /// Starts member `index`'s exchange (and check) on `loop`, which this is called on
    /// (its connection is borrowed there); `done` gets the result. Its time is bounded
    /// by whoever starts it (`LoopCalls`), through the exchange returned.
    func start(_ index: Int, on loop: EventLoop, done: @escaping (Result<CollectedResponse, Error>) -> Void) -> CollectingExchange {
        var head = head(for: index)
        let part = parts[index]
        let key = answers == nil ? nil : part.key(uri: head.uri)
        let kept = key.flatMap { answers?.entry(for: $0) }
        if let kept { head.headers.replaceOrAdd(name: "If-None-Match", value: kept.entityTag) }
        guard checkingObjects else {
            return part.pool.startCollecting(head, on: loop, limit: limit, statusOnly: statusOnly, done: done)
        }
        return part.pool.startCollecting(head, on: loop, limit: limit, statusOnly: statusOnly) { result in
            done(result.flatMap { answer in
                var answer = answer
                switch answer.head.status {
                case .notModified:
                    // Unchanged since the answer kept, which was asked for: that answer,
                    // checked when it came. A 304 to an unconditional request is no answer.
                    guard let kept else { return .failure(CollectError.unexpectedStatus(304)) }
                    return .success(kept.answer)
                case .ok:
                    answer.checkObject()
                    if let key, let answers { answers.keep(answer, for: key) }
                default:
                    break
                }
                return .success(answer)
            })
        }
    }
}

/// One fan-out's calls: every member's exchange and the local part. Results come back
/// in member order, on the client's loop.
///
/// A member's exchange is CPU on the asking agent (its request's encoding and TLS, the
/// answer's decryption and decoding), so on one loop a fleet of N pays N of them in
/// series. A large fan-out is spread instead: the peers are dealt in turn over the
/// loops `run` is given (by their place in the member list, which is sorted, so a
/// member keeps to one loop and its pooled connections there; see `deal`). Every other
/// loop runs its share on its own connections, without locks, checks each answer as
/// it arrives, and hands all its results back in one hop: two hops per loop, not per
/// member. The client's loop runs its smaller share and the local part meanwhile.
private struct FanOut {
    let members: MemberCalls
    let localIndex: Int?
    let local: () -> EventLoopFuture<CollectedResponse>

    /// The client's loop also reads the client's request, makes the local part, and
    /// merges and writes the answer, in which every member's part is copied and
    /// encrypted: the work of about this many members' exchanges for `peers` peers.
    /// Measured on two loops (each thread's CPU per request, `bench/cluster-scale.sh`):
    /// about 0.42 ms at 12 members and 0.65 ms at 30, against 0.07 ms per member's
    /// exchange on another loop, so about 6 and 9 members' worth.
    static func clientLoopWork(peers: Int) -> Int {
        4 + (peers + 1) / 6
    }

    /// Which of `loops` loops takes each peer, by its place among the peers: the
    /// client's loop (0) takes `clientLoopWork` fewer than an even deal would give it
    /// (none once that is all of its share), spread evenly over the places; the other
    /// loops take the rest in turn.
    static func deal(peers: Int, loops: Int) -> [Int] {
        guard loops > 1, peers > 0 else { return Array(repeating: 0, count: peers) }
        let own = max(0, (peers - clientLoopWork(peers: peers) * (loops - 1) + loops / 2) / loops)
        var dealt = 0
        return (0..<peers).map { place in
            if (place + 1) * own / peers > place * own / peers { return 0 }
            defer { dealt += 1 }
            return 1 + dealt % (loops - 1)
        }
    }

    /// `loops[0]` is the client connection's, the one this is called on.
    func run(on loops: [EventLoop], concurrency: Int) -> EventLoopFuture<[Result<CollectedResponse, Error>]> {
        let eventLoop = loops[0]
        eventLoop.assertInEventLoop()
        let count = members.parts.count
        guard count > 0 else { return eventLoop.makeSucceededFuture([]) }
        var shares = Array(repeating: [Int](), count: loops.count)
        let peers = (0..<count).filter { $0 != self.localIndex }
        for (index, loop) in zip(peers, Self.deal(peers: peers.count, loops: loops.count)) {
            shares[loop].append(index)
        }
        if let localIndex = self.localIndex { shares[0].append(localIndex) }
        let dealt = shares
        let perLoop = max(1, concurrency / loops.count)
        let (members, localIndex, local) = (self.members, self.localIndex, self.local)
        // The other loops' shares first, so that they start while this one works on its own.
        let timeout = members.timeout
        var gathered = zip(loops, dealt).dropFirst().map { loop, share in
            loop.flatSubmit {
                LoopCalls(count: share.count, on: loop, timeout: timeout) { position, done in
                    .exchange(members.start(share[position], on: loop, done: done))
                }.run(concurrency: perLoop)
            }.hop(to: eventLoop)
        }
        gathered.insert(LoopCalls(count: dealt[0].count, on: eventLoop, timeout: timeout) { position, done in
            let index = dealt[0][position]
            guard index != localIndex else {
                local().assumeIsolated().whenComplete(done)
                return .bounded
            }
            return .exchange(members.start(index, on: eventLoop, done: done))
        }.run(concurrency: perLoop), at: 0)
        // `LoopCalls` never fails: a call's failure is its result.
        return EventLoopFuture.whenAllSucceed(gathered, on: eventLoop).map { perLoop in
            var results = [Result<CollectedResponse, Error>](repeating: .failure(CollectError.closedEarly), count: count)
            for (share, shareResults) in zip(dealt, perLoop) {
                for (index, result) in zip(share, shareResults) { results[index] = result }
            }
            return results
        }
    }
}

/// Makes `count` calls on one loop, at most `concurrency` at a time; the results in
/// call order, each call's failure as its result.
///
/// A member's exchange gets `timeout` from its start, as `collect` gives it, but from
/// one timer for them all rather than one each (a timer is an allocation, and each
/// cancel searches the loop's scheduled tasks): exchanges start in order, so their
/// deadlines come in order, and the timer is armed for the oldest one still running.
private final class LoopCalls {
    /// What a call started: an exchange this bounds, or work bounded by itself (the local part).
    enum Started {
        case exchange(CollectingExchange)
        case bounded
    }

    private let count: Int
    private let eventLoop: EventLoop
    private let timeout: TimeAmount
    private let call: (Int, @escaping (Result<CollectedResponse, Error>) -> Void) -> Started
    private let promise: EventLoopPromise<[Result<CollectedResponse, Error>]>
    private var results: [Result<CollectedResponse, Error>?]
    private var next = 0
    private var finished = 0
    /// Exchanges started, oldest first, with their deadlines; the timer's.
    private var deadlines = CircularBuffer<(deadline: NIODeadline, exchange: CollectingExchange)>()
    private var timer: Scheduled<Void>?

    init(
        count: Int, on eventLoop: EventLoop, timeout: TimeAmount,
        call: @escaping (Int, @escaping (Result<CollectedResponse, Error>) -> Void) -> Started
    ) {
        self.count = count
        self.eventLoop = eventLoop
        self.timeout = timeout
        self.call = call
        self.promise = eventLoop.makePromise()
        self.results = Array(repeating: nil, count: count)
    }

    func run(concurrency: Int) -> EventLoopFuture<[Result<CollectedResponse, Error>]> {
        eventLoop.assertInEventLoop()
        let future = promise.futureResult
        if count == 0 {
            promise.succeed([])
        } else {
            for _ in 0..<min(max(concurrency, 1), count) { launch() }
        }
        return future
    }

    private func launch() {
        guard next < count else { return }
        let index = next
        next += 1
        let started = call(index) { result in
            self.results[index] = result
            self.finished += 1
            if self.finished == self.count {
                self.timer?.cancel()
                self.timer = nil
                self.deadlines.removeAll()
                self.promise.succeed(self.results.map { $0! })
            } else {
                self.launch()
            }
        }
        guard case .exchange(let exchange) = started, !exchange.isFinished else { return }
        deadlines.append((NIODeadline.now() + timeout, exchange))
        if timer == nil { arm() }
    }

    /// Arms the timer for the oldest exchange still running, if any.
    private func arm() {
        while let first = deadlines.first, first.exchange.isFinished { deadlines.removeFirst() }
        guard let first = deadlines.first else { return }
        timer = eventLoop.assumeIsolated().scheduleTask(deadline: first.deadline) {
            self.timer = nil
            self.expire()
        }
    }

    /// Ends the exchanges whose time is up, then arms for the next.
    private func expire() {
        let now = NIODeadline.now()
        var late: [CollectingExchange] = []
        while let first = deadlines.first, first.deadline <= now {
            late.append(deadlines.removeFirst().exchange)
        }
        // Each end may start the next call, which appends its own deadline.
        for exchange in late { exchange.cancel(CollectError.timedOut) }
        if timer == nil, finished < count { arm() }
    }
}
