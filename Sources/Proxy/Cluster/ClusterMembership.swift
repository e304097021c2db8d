import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The cluster's agents, learnt from the Swarm itself: the cluster address is
/// resolved every probe interval, each address is asked who it is, and members that
/// stop answering for three intervals are dropped (they come back when they answer).
/// No gossip, no consensus: Swarm's DNS is the source of truth.
public final class ClusterMembership: Sendable {
    public struct Settings: Sendable {
        public var address: ClusterAddress
        /// The port of seeds that name none: the agents' own port.
        public var defaultPort: Int
        public var probeInterval: TimeAmount
        /// For one probe, and for one member's part of an aggregated request.
        public var memberTimeout: TimeAmount
        /// The name this agent answers to instead of its engine's `Name`, so that
        /// several agents in front of one engine are distinct members.
        public var nodeName: String?

        public init(address: ClusterAddress, defaultPort: Int, probeInterval: TimeAmount, memberTimeout: TimeAmount, nodeName: String? = nil) {
            self.address = address
            self.defaultPort = defaultPort
            self.probeInterval = probeInterval
            self.memberTimeout = memberTimeout
            self.nodeName = nodeName
        }
    }

    /// The probe path; public, agent to agent (see `MemberInfo`).
    public static let memberInfoPath = "/v2/cluster/member"

    public let settings: Settings
    private let engine: UpstreamPool
    private let peerTLS: NIOSSLContext
    private let eventLoop: EventLoop
    private let threadPool: NIOThreadPool
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var local: NodeIdentity?
        /// By "host:port".
        var entries: [String: Entry] = [:]
        var pools: [String: UpstreamPool] = [:]
        /// `entries` as every request reads them, one per node name, sorted by it:
        /// rebuilt when a member comes, changes or goes, not on each request.
        var members: [ClusterMember] = []
        var peers: [ClusterPeer] = []
        var stopped = false
        var nextRound: Scheduled<Void>?
    }

    private struct Entry {
        var member: ClusterMember
        var lastSeen: NIODeadline
    }

    public init(settings: Settings, engine: UpstreamPool, eventLoop: EventLoop, threadPool: NIOThreadPool = .singleton, logger: Logger) throws {
        self.settings = settings
        self.engine = engine
        self.peerTLS = try UpstreamTransport.peerTLSContext()
        self.eventLoop = eventLoop
        self.threadPool = threadPool
        self.logger = logger
    }

    // MARK: What the agent asks

    /// This node, as its engine last described it.
    public var localNode: NodeIdentity? { state.withLockedValue { $0.local } }

    /// Every member that answered recently, sorted by node name; this node included
    /// once it has found itself among the addresses. A node seen at two addresses (its
    /// task was replaced and the old address is not yet pruned) is the newer one.
    public var members: [ClusterMember] { state.withLockedValue { $0.members } }

    /// `members` with the keep-alive connections to each one's agent, for the fan-out.
    public var peers: [ClusterPeer] { state.withLockedValue { $0.peers } }

    public func member(named name: String) -> ClusterMember? {
        members.first { $0.nodeName == name }
    }

    /// A manager other than this node, for requests only a manager can answer.
    public func remoteManager() -> ClusterMember? {
        let local = localNode?.name
        return members.first { $0.isManager && $0.nodeName != local }
    }

    /// The keep-alive connections to one member's agent.
    public func pool(for member: ClusterMember) -> UpstreamPool {
        state.withLockedValue { pool(for: member, in: &$0) }
    }

    private func pool(for member: ClusterMember, in state: inout State) -> UpstreamPool {
        let key = "\(member.host):\(member.port)"
        if let pool = state.pools[key] { return pool }
        let pool = UpstreamPool(
            transport: .tls(host: member.host, port: member.port, context: peerTLS),
            connectTimeout: settings.memberTimeout, maxIdlePerLoop: 16)
        state.pools[key] = pool
        return pool
    }

    /// One member per node name (the latest address wins a tie), sorted by name.
    private func rebuildMembers(in state: inout State) {
        var byName: [String: Entry] = [:]
        for entry in state.entries.values {
            if let other = byName[entry.member.nodeName], other.lastSeen > entry.lastSeen { continue }
            byName[entry.member.nodeName] = entry
        }
        let members = byName.values.map(\.member).sorted { $0.nodeName < $1.nodeName }
        var peers: [ClusterPeer] = []
        for member in members { peers.append(ClusterPeer(member: member, pool: pool(for: member, in: &state))) }
        state.members = members
        state.peers = peers
    }

    // MARK: Probing

    /// Runs the first round now and the next ones every probe interval. The future
    /// completes after the first round, so start-up can say what it found.
    @discardableResult
    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { self.round() }
    }

    public func stop() {
        let (pools, next) = state.withLockedValue { state -> ([UpstreamPool], Scheduled<Void>?) in
            state.stopped = true
            return (Array(state.pools.values), state.nextRound)
        }
        next?.cancel()
        pools.forEach { $0.closeIdle() }
    }

    private func round() -> EventLoopFuture<Void> {
        let identity = NodeIdentity.fetch(from: engine, on: eventLoop, timeout: settings.memberTimeout)
            .map { engineIdentity in
                var identity = engineIdentity
                if let name = self.settings.nodeName { identity.name = name }
                let changed = self.state.withLockedValue { state -> Bool in
                    defer { state.local = identity }
                    return state.local != identity
                }
                if changed {
                    self.logger.info("node identity", metadata: ["node": "\(identity.name)", "role": "\(identity.role)", "swarm": "\(identity.isSwarmMember)"])
                }
            }
            .recover { error in
                self.logger.warning("cannot ask the local engine who this node is", metadata: ["error": "\(error)"])
            }
        let probes = resolve().flatMap { addresses in
            EventLoopFuture.whenAllComplete(addresses.map { self.probe(host: $0.host, port: $0.port) }, on: self.eventLoop)
        }
        return identity.and(probes).map { _ in
            self.prune()
            self.scheduleNextRound()
        }
    }

    private func scheduleNextRound() {
        state.withLockedValue { state in
            guard !state.stopped else { return }
            state.nextRound = eventLoop.scheduleTask(in: settings.probeInterval) {
                _ = self.round()
            }
        }
    }

    /// Every address the cluster address names right now. Name look-ups block, so
    /// they run on the thread pool.
    private func resolve() -> EventLoopFuture<[(host: String, port: Int)]> {
        let seeds = settings.address.seeds
        let port = settings.defaultPort
        return threadPool.runIfActive(eventLoop: eventLoop) {
            var addresses: [(host: String, port: Int)] = []
            var seen = Set<String>()
            for seed in seeds {
                for host in Self.lookUp(seed.host) where seen.insert("\(host):\(seed.port ?? port)").inserted {
                    addresses.append((host, seed.port ?? port))
                }
            }
            return addresses
        }.recover { _ in [] }
    }

    /// IPv4 and IPv6 addresses of `name` (an address is its own answer).
    static func lookUp(_ name: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var hosts: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if info.pointee.ai_family == AF_INET {
                info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                }
            } else if info.pointee.ai_family == AF_INET6 {
                info.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                }
            }
            let host = String(cString: text)
            if !host.isEmpty, !hosts.contains(host) { hosts.append(host) }
            cursor = info.pointee.ai_next
        }
        return hosts
    }

    private func probe(host: String, port: Int) -> EventLoopFuture<Void> {
        let placeholder = ClusterMember(nodeName: "", isManager: false, host: host, port: port, version: "")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: Self.memberInfoPath, headers: ["Host": host])
        return pool(for: placeholder).collect(head, on: eventLoop, limit: 64 * 1024, timeout: settings.memberTimeout)
            .flatMapThrowing { response in
                guard response.head.status == .ok else { throw ClusterError.peerAnswered(response.head.status.code) }
                let info = try MemberInfo(probeAnswer: response.body.readableBytesView)
                let member = ClusterMember(answer: info, host: host, port: port)
                let isNew = self.state.withLockedValue { state -> Bool in
                    let key = "\(host):\(port)"
                    let previous = state.entries[key]?.member
                    state.entries[key] = Entry(member: member, lastSeen: .now())
                    if previous != member { self.rebuildMembers(in: &state) }
                    return previous != member
                }
                if isNew {
                    self.logger.info("cluster member", metadata: ["node": "\(member.nodeName)", "role": "\(member.role)", "address": "\(host):\(port)"])
                }
            }
            .recover { error in
                self.logger.debug("probe failed", metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            }
    }

    /// Members silent for three probe intervals are gone until they answer again.
    private func prune() {
        let horizon = NIODeadline.now() - settings.probeInterval * 3
        let gone = state.withLockedValue { state -> [ClusterMember] in
            let stale = state.entries.filter { $0.value.lastSeen < horizon }
            for key in stale.keys { state.entries[key] = nil }
            if !stale.isEmpty { self.rebuildMembers(in: &state) }
            return stale.values.map(\.member)
        }
        for member in gone {
            logger.warning("cluster member lost", metadata: ["node": "\(member.nodeName)", "address": "\(member.host):\(member.port)"])
        }
    }
}
