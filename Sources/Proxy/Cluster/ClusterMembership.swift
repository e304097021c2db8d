import CoreMetrics
import Crypto
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
///
/// What an address answers is checked before it makes a member (`PeerText`); with
/// a secret, it must also prove that it holds it (`PeerKey`). A node name belongs to
/// the address that answered for it first, for as long as that address answers.
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
        /// `AGENT_SECRET` (or the secrets of `AGENT_SECRET_FILE`): peers prove they hold
        /// one before they are members.
        public var secrets: [String]

        public init(
            address: ClusterAddress, defaultPort: Int, probeInterval: TimeAmount, memberTimeout: TimeAmount, nodeName: String? = nil,
            secrets: [String] = []
        ) {
            self.address = address
            self.defaultPort = defaultPort
            self.probeInterval = probeInterval
            self.memberTimeout = memberTimeout
            self.nodeName = nodeName
            self.secrets = secrets
        }
    }

    /// The probe path; agent to agent, without Portainer's signature (see `MemberInfo`).
    public static let memberInfoPath = "/v2/cluster/member"

    public let settings: Settings
    /// Present in secret mode.
    public let peerKey: PeerKey?
    private let engine: UpstreamPool
    private let peerTLS: NIOSSLContext
    private let eventLoop: EventLoop
    private let threadPool: NIOThreadPool
    private let logger: Logger
    /// What a request's Portainer signature signs (the secret's digest), from its
    /// headers: the agent's `SignatureVerifier`, which has checked it already.
    private let signatureDigest: @Sendable (HTTPHeaders) -> Insecure.MD5Digest?
    private let state = NIOLockedValueBox(State())

    private struct State {
        var local: NodeIdentity?
        /// By "host:port" (`HostPort.join`: an IPv6 host in brackets).
        var entries: [String: Entry] = [:]
        var pools: [String: UpstreamPool] = [:]
        /// `entries` as every request reads them, one per node name, sorted by it:
        /// rebuilt when a member comes, changes or goes, not on each request.
        var members: [ClusterMember] = []
        var peers: [ClusterPeer] = []
        /// The hosts the cluster address named at the last round: the only ones told
        /// who this agent is without a secret.
        var resolvedHosts: Set<String> = []
        /// Why each refused address was refused, as last logged: logged again only
        /// when it changes, not every round.
        var refusals: [String: String] = [:]
        var stopped = false
        var nextRound: Scheduled<Void>?
        /// What each address's probes found, for diagnostics (`probeRecords`): one per
        /// address the cluster address names or a member holds.
        var records: [String: ProbeRecord] = [:]
        /// Why the last look at the local engine failed; nil when it answered.
        var engineError: String?
    }

    private struct Entry {
        var member: ClusterMember
        var lastSeen: NIODeadline
        /// Its latest probe was answered, and the cluster address still names it:
        /// while so, no other address may take its node name.
        var answering = true
    }

    public init(
        settings: Settings, engine: UpstreamPool, eventLoop: EventLoop, threadPool: NIOThreadPool = .singleton, logger: Logger,
        signatureDigest: @escaping @Sendable (HTTPHeaders) -> Insecure.MD5Digest? = { _ in nil }
    ) throws {
        self.settings = settings
        self.signatureDigest = signatureDigest
        self.engine = engine
        self.peerKey = settings.secrets.isEmpty ? nil : PeerKey(secrets: settings.secrets)
        self.peerTLS = try UpstreamTransport.peerTLSContext(proven: peerKey != nil)
        self.eventLoop = eventLoop
        self.threadPool = threadPool
        self.logger = logger
    }

    // MARK: What the agent asks

    /// This node, as its engine last described it.
    public var localNode: NodeIdentity? { state.withLockedValue { $0.local } }

    /// What this agent knows of each address it probes, sorted by address: for
    /// `GET /v2/cluster/status` and `deckhand status`.
    public var probeRecords: [ProbeRecord] {
        state.withLockedValue { state in
            state.records.values.map { record in
                var record = record
                record.isMember = state.entries[record.address] != nil
                return record
            }.sorted { $0.address < $1.address }
        }
    }

    /// Why the last look at the local engine (`GET /info`, every round) failed; nil
    /// when it answered.
    public var engineError: String? { state.withLockedValue { $0.engineError } }

    /// Every member that answered recently, sorted by node name; this node included
    /// once it has found itself among the addresses. A node name is held by one
    /// address: a second address claiming it (a replaced task's) takes it over only
    /// once the first stops answering or leaves the cluster address.
    public var members: [ClusterMember] { state.withLockedValue { $0.members } }

    /// `members` with the keep-alive connections to each one's agent, for the fan-out.
    public var peers: [ClusterPeer] { state.withLockedValue { $0.peers } }

    public func member(named name: String) -> ClusterMember? {
        members.first { $0.nodeName == name }
    }

    /// A manager other than this node that may be sent a request with `headers` (see
    /// `recipients`), for requests only a manager can answer.
    public func remoteManager(for headers: HTTPHeaders) -> ClusterMember? {
        let local = localNode?.name
        let mayReceive = recipients(for: headers)
        return members.first { $0.isManager && $0.nodeName != local && mayReceive($0) }
    }

    /// Which members a request with `headers` (its Portainer signature) may be sent to.
    /// In secret mode, only those that proved, at their last probe, the secret the
    /// signature signs: while a Swarm rotates, an agent that holds only the old secret
    /// (a leaked one's holder among them) is never handed the new secret's signature,
    /// which Portainer sends unchanged on every request and which would outlive the
    /// rotation. It could not check that signature anyway. Without a secret, every member.
    public func recipients(for headers: HTTPHeaders) -> @Sendable (ClusterMember) -> Bool {
        guard let peerKey else { return { _ in true } }
        guard let digest = signatureDigest(headers), let key = peerKey.key(signing: digest) else { return { _ in false } }
        return { $0.provenKeys.contains(key) }
    }

    /// The keep-alive connections to one member's agent.
    public func pool(for member: ClusterMember) -> UpstreamPool {
        state.withLockedValue { pool(for: member, in: &$0) }
    }

    private func pool(for member: ClusterMember, in state: inout State) -> UpstreamPool {
        let key = HostPort.join(member.host, member.port)
        if let pool = state.pools[key] { return pool }
        let pool = UpstreamPool(
            transport: .tls(host: member.host, port: member.port, context: peerTLS, vouchedBy: peerKey),
            connectTimeout: settings.memberTimeout, maxIdlePerLoop: 16)
        state.pools[key] = pool
        return pool
    }

    /// Sorted by name; `adopt` keeps one entry per node name.
    private func rebuildMembers(in state: inout State) {
        let members = state.entries.values.map(\.member).sorted { $0.nodeName < $1.nodeName }
        var peers: [ClusterPeer] = []
        for member in members { peers.append(ClusterPeer(member: member, pool: pool(for: member, in: &state))) }
        state.members = members
        state.peers = peers
    }

    // MARK: Between agents

    /// Who may be told who this agent is (`GET /v2/cluster/member`).
    public enum ProbeAdmission: Sendable, Equatable {
        /// Secret mode: the prober proved it holds the key; the answer proves it back
        /// over this nonce (`PeerKey.answerProof`).
        case proven(nonce: String)
        /// Trust on first use: a probe from an address the cluster address names.
        case clusterAddress
        case refused
    }

    /// Decides on one probe from its challenge header and the connection's two ends.
    /// The challenge names the address its sender dialled, which must be this end's:
    /// so it cannot be relayed here from an impostor's address.
    public func admitProbe(challenge: String?, local: SocketAddress?, remote: SocketAddress?) -> ProbeAdmission {
        if let peerKey {
            guard let ip = local?.ipAddress, let port = local?.port else { return .refused }
            guard let nonce = peerKey.admitChallenge(challenge, address: HostPort.join(Self.plainIP(ip), port)) else { return .refused }
            return .proven(nonce: nonce)
        }
        guard let ip = remote?.ipAddress else { return .refused }
        return state.withLockedValue { $0.resolvedHosts.contains(Self.plainIP(ip)) } ? .clusterAddress : .refused
    }

    /// Whether `remote` is one of the cluster's agents: an address the cluster address
    /// named at the last round, or a member's. A client allowlist lets these in, so
    /// that peers probe and forward to each other whatever else it names.
    public func isClusterAddress(_ remote: SocketAddress?) -> Bool {
        guard let ip = remote?.ipAddress.map(Self.plainIP) else { return false }
        return state.withLockedValue { state in
            state.resolvedHosts.contains(ip) || state.members.contains { $0.host == ip }
        }
    }

    /// `head` as it goes on to `member`'s agent: marked as forwarded and, in secret
    /// mode, with this agent's proof.
    public func forwarded(_ head: HTTPRequestHead, to member: ClusterMember, hop: String = "1") -> HTTPRequestHead {
        var onward = head
        onward.headers.replaceOrAdd(name: AgentHeaderName.hop, value: hop)
        peerKey?.sign(&onward, for: member.nodeName)
        return onward
    }

    /// Whether a request another agent forwarded to this one may be served.
    public enum ForwardAdmission: Sendable, Equatable {
        /// No secret: every agent the cluster address names is trusted.
        case unchecked
        /// Its proof is valid and fresh under this key (secret mode).
        case proven(PeerKey.KeyID)
        case refused
    }

    /// Decides on a request another agent forwarded to this one (named `localName`):
    /// always served without a secret, only with a valid fresh proof with one.
    public func admitForwarded(_ head: HTTPRequestHead, localName: String) -> ForwardAdmission {
        guard let peerKey else { return .unchecked }
        return peerKey.admittingKey(head, node: localName).map(ForwardAdmission.proven) ?? .refused
    }

    /// An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d`; the cluster
    /// address resolves it to `a.b.c.d`.
    static func plainIP(_ ip: String) -> String {
        ip.hasPrefix("::ffff:") && ip.contains(".") ? String(ip.dropFirst(7)) : ip
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
        let started = NIODeadline.now()
        let identity = NodeIdentity.fetch(from: engine, on: eventLoop, timeout: settings.memberTimeout)
            .map { engineIdentity in
                var identity = engineIdentity
                if let name = self.settings.nodeName { identity.node.name = name }
                let changed = self.state.withLockedValue { state -> Bool in
                    defer {
                        state.local = identity
                        state.engineError = nil
                    }
                    return state.local != identity
                }
                if changed {
                    self.logger.info("node identity", metadata: ["node": "\(identity.name)", "role": "\(identity.role)", "swarm": "\(identity.isSwarmMember)"])
                }
            }
            .recover { error in
                self.state.withLockedValue { $0.engineError = "\(error)" }
                self.logger.warning("cannot ask the local engine who this node is", metadata: ["error": "\(error)"])
            }
        // Until this agent knows who it is, it answers probes with 503, its own
        // included: until then a round probes once the engine has answered (or failed
        // to); later rounds ask both at once.
        let knowsItself = state.withLockedValue { $0.local != nil }
        let ready = knowsItself ? eventLoop.makeSucceededVoidFuture() : identity
        let probes = ready.flatMap { self.resolve() }.flatMap { addresses in
            self.resolved(addresses)
            return ProbeWaves(count: addresses.count, on: self.eventLoop) { index in
                self.probe(host: addresses[index].host, port: addresses[index].port)
            }.run(width: Self.probesAtOnce)
        }
        return identity.and(probes).map { _ in
            self.prune(roundStarted: started)
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

    /// The most addresses one round probes: a DNS answer with more (a hostile or broken
    /// resolver) is cut there, and the cut logged.
    public static let maximumAddresses = 1024

    /// The most probes of one round in flight at once: a long answer is probed in waves
    /// (each probe within the member timeout), so that it never means a thousand TLS
    /// connections opened at the same moment. Answering agents take milliseconds, so
    /// a Swarm of this many nodes or fewer sees no difference.
    public static let probesAtOnce = 64

    /// Every address the cluster address names right now (at most `maximumAddresses`).
    /// Name look-ups block, so they run on the thread pool.
    private func resolve() -> EventLoopFuture<[(host: String, port: Int)]> {
        let seeds = settings.address.seeds
        let port = settings.defaultPort
        return threadPool.runIfActive(eventLoop: eventLoop) { [logger] in
            var addresses: [(host: String, port: Int)] = []
            var seen = Set<String>()
            var named = 0
            for seed in seeds {
                for host in Self.lookUp(seed.host) where seen.insert(HostPort.join(host, seed.port ?? port)).inserted {
                    named += 1
                    if addresses.count < Self.maximumAddresses { addresses.append((host, seed.port ?? port)) }
                }
            }
            if named > addresses.count {
                logger.warning("the cluster address names more agents than one round probes", metadata: [
                    "named": "\(named)", "probed": "\(addresses.count)",
                ])
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
        // A hostile resolver may answer thousands of records: no quadratic de-duplication.
        var seen = Set<String>()
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
            if !host.isEmpty, seen.insert(host).inserted { hosts.append(host) }
            cursor = info.pointee.ai_next
        }
        return hosts
    }

    /// Addresses the cluster address no longer names stop holding their node names
    /// (a replaced task's), and only those it names are told who this agent is. What
    /// this agent kept for an address neither named nor held by a member (its record,
    /// its connections, its probe metrics) is let go: a Swarm whose tasks are replaced
    /// for months, each with a new address, leaves nothing behind.
    func resolved(_ addresses: [(host: String, port: Int)]) {
        let keys = Set(addresses.map { HostPort.join($0.host, $0.port) })
        let forgotten = state.withLockedValue { state -> [(String, UpstreamPool)] in
            state.resolvedHosts = Set(addresses.map(\.host))
            for key in state.records.keys where !keys.contains(key) && state.entries[key] == nil { state.records[key] = nil }
            for key in state.entries.keys where !keys.contains(key) { state.entries[key]?.answering = false }
            state.refusals = state.refusals.filter { keys.contains($0.key) }
            let gone = state.pools.filter { !keys.contains($0.key) && state.entries[$0.key] == nil }
            for key in gone.keys { state.pools[key] = nil }
            return gone.map { ($0.key, $0.value) }
        }
        for (address, pool) in forgotten {
            pool.closeIdle()
            let probed = [("member", address)]
            Timer(label: "deckhand_cluster_probe_seconds", dimensions: probed).destroy()
            Counter(label: "deckhand_cluster_probe_failures_total", dimensions: probed).destroy()
        }
    }

    /// How many addresses this agent keeps connections for (named, or a member's).
    var pooledAddresses: Int { state.withLockedValue { $0.pools.count } }

    private func probe(host: String, port: Int) -> EventLoopFuture<Void> {
        let address = HostPort.join(host, port)
        let placeholder = ClusterMember(nodeName: "", isManager: false, host: host, port: port, version: "")
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: Self.memberInfoPath, headers: ["Host": address])
        let challenge = peerKey?.challenge(address: address)
        if let challenge { head.headers.add(name: AgentHeaderName.challenge, value: challenge.header) }
        let started = NIODeadline.now()
        // One series per probed address: as many as the cluster has agents.
        let probed = [("member", address)]
        return pool(for: placeholder).collect(head, on: eventLoop, limit: 64 * 1024, timeout: settings.memberTimeout)
            .flatMapThrowing { response in
                guard response.head.status == .ok else { throw ClusterError.peerAnswered(response.head.status.code) }
                let body = response.body.readableBytesView
                var proven = Set<PeerKey.KeyID>()
                if let peerKey = self.peerKey, let challenge {
                    proven = peerKey.provenKeys(answer: body, proof: response.head.headers.first(name: AgentHeaderName.proof), nonce: challenge.nonce)
                    guard !proven.isEmpty else { throw PeerRefusal.unproven }
                }
                var member = try ClusterMember(answer: MemberInfo(probeAnswer: body), host: host, port: port)
                member.provenKeys = proven
                let adopted = try self.adopt(member, at: address)
                self.record(address) { record in
                    record.nodeName = member.nodeName
                    record.role = member.role
                    record.version = member.version.isEmpty ? nil : member.version
                    record.lastSuccess = PeerKey.now
                    let roundTrip = (NIODeadline.now() - started).nanoseconds
                    Timer(label: "deckhand_cluster_probe_seconds", dimensions: probed).recordNanoseconds(roundTrip)
                    record.roundTripMilliseconds = Double(roundTrip) / 1e6
                    record.consecutiveFailures = 0
                    record.lastError = nil
                    record.dropped = nil
                }
                if adopted {
                    self.logger.info("cluster member", metadata: ["node": "\(member.nodeName)", "role": "\(member.role)", "address": "\(address)"])
                }
            }
            .recover { error in
                let error = self.peerKey != nil && PeerCertificate.isRefusal(error) ? PeerRefusal.certificateNotVouched : error
                Counter(label: "deckhand_cluster_probe_failures_total", dimensions: probed).increment()
                self.record(address) { record in
                    record.consecutiveFailures += 1
                    record.lastError = "\(error)"
                }
                let refusal = self.state.withLockedValue { state -> String? in
                    state.entries[address]?.answering = false
                    guard let refusal = error as? PeerRefusal else { return nil }
                    let reason = "\(refusal)"
                    return state.refusals.updateValue(reason, forKey: address) == reason ? nil : reason
                }
                if let refusal {
                    self.logger.warning("cluster member refused", metadata: ["address": "\(address)", "reason": "\(refusal)"])
                } else {
                    self.logger.debug("probe failed", metadata: ["address": "\(address)", "error": "\(error)"])
                }
            }
    }

    /// Records `member` as the one at `address`; true when it is new or changed.
    /// Throws when another address that still answers holds its node name; one that
    /// does not answer any more gives the name up at once.
    private func adopt(_ member: ClusterMember, at address: String) throws -> Bool {
        try state.withLockedValue { state -> Bool in
            let others = state.entries.filter { $0.key != address && $0.value.member.nodeName == member.nodeName }
            if let holder = others.first(where: { $0.value.answering }) { throw PeerRefusal.nameTaken(by: holder.key) }
            for key in others.keys { state.entries[key] = nil }
            state.refusals[address] = nil
            let previous = state.entries[address]?.member
            state.entries[address] = Entry(member: member, lastSeen: .now())
            let changed = previous != member || !others.isEmpty
            if changed { self.rebuildMembers(in: &state) }
            return changed
        }
    }

    private func record(_ address: String, _ update: (inout ProbeRecord) -> Void) {
        state.withLockedValue { state in
            var record = state.records[address] ?? ProbeRecord(address: address)
            update(&record)
            state.records[address] = record
        }
    }

    /// Members silent for three probe intervals are gone until they answer again. One
    /// that answered during the round that just ended is never gone: a round of many
    /// silent addresses, probed in waves (`probesAtOnce`), may last longer than that,
    /// and those probed early in it must not count as silent for it.
    private func prune(roundStarted: NIODeadline) {
        let horizon = min(NIODeadline.now() - settings.probeInterval * 3, roundStarted)
        let gone = state.withLockedValue { state -> [ClusterMember] in
            let stale = state.entries.filter { $0.value.lastSeen < horizon }
            for key in stale.keys {
                state.entries[key] = nil
                state.records[key, default: ProbeRecord(address: key)].dropped = "no answer for three probe intervals"
            }
            if !stale.isEmpty { self.rebuildMembers(in: &state) }
            return stale.values.map(\.member)
        }
        for member in gone {
            logger.warning("cluster member lost", metadata: ["node": "\(member.nodeName)", "address": "\(HostPort.join(member.host, member.port))"])
        }
    }
}

/// What one address's probes found: who answered there, when, how fast, and what
/// went wrong since. Reported as it is (`GET /v2/cluster/status`).
public struct ProbeRecord: Sendable, Equatable, Codable {
    /// "host:port" as probed.
    public var address: String
    public var nodeName: String?
    public var role: String?
    /// Told only by a peer that proved the secret.
    public var version: String?
    /// Whether the address holds a node name in the membership right now.
    public var isMember = false
    /// Unix time of the last answer that made or kept a member.
    public var lastSuccess: Int64?
    public var roundTripMilliseconds: Double?
    public var consecutiveFailures = 0
    /// The last failure: no connection, a time-out, a refused or unproven answer.
    public var lastError: String?
    /// Why the member at this address was dropped, until it answers again.
    public var dropped: String?

    public init(address: String) {
        self.address = address
    }

    /// Every key always, `null` when unknown: a stable shape for scripts.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(nodeName, forKey: .nodeName)
        try container.encode(role, forKey: .role)
        try container.encode(version, forKey: .version)
        try container.encode(isMember, forKey: .isMember)
        try container.encode(lastSuccess, forKey: .lastSuccess)
        try container.encode(roundTripMilliseconds, forKey: .roundTripMilliseconds)
        try container.encode(consecutiveFailures, forKey: .consecutiveFailures)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(dropped, forKey: .dropped)
    }

    enum CodingKeys: String, CodingKey {
        case address = "Address", nodeName = "NodeName", role = "NodeRole", version = "Version", isMember = "Member"
        case lastSuccess = "LastSuccess", roundTripMilliseconds = "RoundTripMs", consecutiveFailures = "ConsecutiveFailures"
        case lastError = "LastError", dropped = "Dropped"
    }
}

/// Runs `count` probes on one loop, at most `width` at a time, each started as an
/// earlier one ends; the future completes when all have (a probe's failure is its own
/// to record, so it never fails).
private final class ProbeWaves {
    private let count: Int
    private let eventLoop: EventLoop
    private let start: (Int) -> EventLoopFuture<Void>
    private let promise: EventLoopPromise<Void>
    private var next = 0
    private var finished = 0

    init(count: Int, on eventLoop: EventLoop, start: @escaping (Int) -> EventLoopFuture<Void>) {
        self.count = count
        self.eventLoop = eventLoop
        self.start = start
        self.promise = eventLoop.makePromise()
    }

    func run(width: Int) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        let future = promise.futureResult
        if count == 0 { promise.succeed() }
        for _ in 0..<min(max(width, 1), count) { launch() }
        return future
    }

    private func launch() {
        guard next < count else { return }
        let index = next
        next += 1
        start(index).hop(to: eventLoop).assumeIsolated().whenComplete { _ in
            self.finished += 1
            if self.finished == self.count { self.promise.succeed() } else { self.launch() }
        }
    }
}
