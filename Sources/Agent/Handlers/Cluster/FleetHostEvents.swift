import Hardware
import NIOCore
import NIOHTTP1
import Proxy

/// Every node's hardware events in one stream: this node's own (`LocalHostEvents`)
/// and each other member's `/v2/host/events` (`MemberLineStream`, signed and targeted
/// like the fleet's host info), interleaved line by line as they come.
///
/// The members follow the cluster's membership for as long as the stream lasts, and
/// every gap in a member's events is told, never silent:
/// - a member whose stream cannot be opened, is refused, drops or sends a bad line is
///   named once with `member-unreachable`, and its stream is opened again after a
///   back-off (1 s, doubling up to 30 s; from 1 s again once a stream has lasted that
///   long); when it opens, `member-reachable`;
/// - a member that joins the cluster after the stream began is followed from the
///   moment it is taken up (from the client's `since`, when it gave one), with
///   `member-joined`;
/// - a member that leaves the membership (it stopped answering the probes, e.g. its
///   link is cut and its stream merely hangs) is let go with `member-left`.
///
/// A member's stream opens with `since` just after the last event it sent (before any,
/// where it started), so a reopened or rejoined member sends what it kept of the gap
/// (its `HardwareEventMonitor` history), and a `history-incomplete` line of its own
/// when that is not all of it (its agent restarted, or more than it keeps happened).
/// Only a member's events move that point, never its own notices (stamped with its
/// time of writing them, after the events they are about); its `overflow` (the fleet
/// paused it too long) is not passed on: its stream's end is, and the reopened stream
/// replays what it kept. A `Time` is a peer's text: one that does not read as a time
/// from 1970 to 2262 moves nothing. Where departed members resumed is remembered for
/// the last `rememberedDepartures` of them.
///
/// In secret mode, a member's stream was checked under the secrets of its handshake:
/// when they change (a rotation, which may drop a leaked secret), each member's
/// stream is opened again at the next look, under the secrets now in force, and
/// resumes where it was (no notice: nothing is missed).
///
/// Back-pressure: members' lines wait here up to `maxPending` bytes; beyond that every
/// member stream is paused until the client has taken them. The stream's own lines
/// wait too, up to `noticeRoom` bytes more; past that (a client that has not read for
/// long while members came and went) the stream ends with `overflow`, as a local
/// stream's full queue does.
final class FleetHostEvents: EventLineSource {
    static let maxPending = 256 * 1024
    static let noticeRoom = 64 * 1024
    static let rememberedDepartures = 256
    /// A member's lines that are about its stream, not events: they do not move where it resumes.
    static let notices: Set<String> = [
        HostEventLine.overflow, HostEventLine.historyIncomplete, HostEventLine.eventsLost, HostEventLine.memberUnreachable,
        HostEventLine.memberReachable, HostEventLine.memberJoined, HostEventLine.memberLeft,
    ]

    struct Timing {
        /// How long a member has to answer its stream's request (the member timeout).
        var open = TimeAmount.seconds(10)
        /// How often the membership and the members waiting to be reopened are looked at.
        var tick = TimeAmount.seconds(1)
        var firstBackOff = TimeAmount.seconds(1)
        var maxBackOff = TimeAmount.seconds(30)
    }

    struct Peer {
        var member: ClusterMember
        var pool: UpstreamPool
        var name: String { member.nodeName }
        /// Where its agent listens: a node name that moves (a replaced task) is a new stream.
        var address: String { HostPort.join(member.host, member.port) }
    }

    /// One member followed by the stream.
    private struct Member {
        var peer: Peer
        /// Nil while waiting to be reopened.
        var stream: MemberLineStream?
        /// When its current stream answered `200`.
        var openedAt: NIODeadline?
        /// The client was told it is unreachable, and not yet that it is back.
        var down = false
        /// It joined after the stream began, and the client has not been told yet.
        var joining = false
        var backOff = TimeAmount.zero
        var retryAt = NIODeadline.distantFuture
        /// The secrets' generation its stream was opened under.
        var generation = 0
    }

    private let local: LocalHostEvents
    private let membership: () -> [Peer]
    private let request: (ClusterMember, Int64) -> HTTPRequestHead
    /// The secrets' generation (`PeerKey.generation`; 0 without a secret).
    private let generation: () -> Int
    /// The client's `since`, if it gave one: where every member's stream starts before
    /// any of its events came, those that join later included.
    private let since: Int64?
    /// When the stream began: where the first members' streams start without a `since`.
    private let began: Int64
    private let eventLoop: EventLoop
    private let timing: Timing
    private var members: [String: Member] = [:]
    /// Where each member's stream resumes, on its own clock: just after its last event's
    /// `Time`. Kept when a member leaves, so that one that rejoins resumes too.
    private var resumePoints: [String: Int64] = [:]
    /// Where each member's stream starts before any of its events came (this node's
    /// clock): the stream's start, or the moment a member that joined later was taken up.
    private var startPoints: [String: Int64] = [:]
    /// Members that left, oldest first: past `rememberedDepartures`, the oldest one's
    /// points are forgotten (a long stream over a fleet whose nodes keep changing names).
    private var departures: [String] = []
    private var ticker: Scheduled<Void>?
    private var pending = ByteBuffer()
    private var paused = false
    private var wake: (() -> Void)?
    private var wakeScheduled = false
    private var overflowed = false

    /// `membership` gives the other members as they are now (this node left out); it
    /// is asked at the start and every `tick`. `request` makes the head that opens a
    /// member's stream from a time (its `since`), each time one is opened (a peer proof
    /// is fresh only briefly): from `since` at first, then from just after the last
    /// line it sent, so a reopened stream replays what the member kept of the gap.
    init(local: LocalHostEvents, membership: @escaping () -> [Peer], request: @escaping (ClusterMember, Int64) -> HTTPRequestHead,
         since: Int64?, generation: @escaping () -> Int = { 0 }, timing: Timing = Timing(), on eventLoop: EventLoop) {
        self.timing = timing
        self.generation = generation
        self.since = since
        began = since ?? HardwareEvent.now
        self.local = local
        self.membership = membership
        self.request = request
        self.eventLoop = eventLoop
    }

    func start(wake: @escaping () -> Void) {
        self.wake = wake
        local.start(wake: wake)
        for peer in membership() {
            members[peer.name] = Member(peer: peer)
            startPoints[peer.name] = began
            open(peer.name)
        }
        scheduleTick()
    }

    var hasOverflowed: Bool { overflowed || local.hasOverflowed }

    func take(into buffer: inout ByteBuffer) -> Bool {
        let ended = local.take(into: &buffer) || overflowed
        buffer.writeBuffer(&pending)
        pending.clear()
        if paused {
            paused = false
            for member in members.values { member.stream?.resume() }
        }
        return ended
    }

    func stop() {
        ticker?.cancel()
        ticker = nil
        local.stop()
        for member in members.values { member.stream?.close() }
        members = [:]
        wake = nil
    }

    private func open(_ name: String) {
        guard let member = members[name] else { return }
        members[name]?.retryAt = .distantFuture
        members[name]?.generation = generation()
        let stream = MemberLineStream(
            request(member.peer.member, resumePoints[name] ?? startPoints[name] ?? began), pool: member.peer.pool, on: eventLoop,
            openTimeout: timing.open,
            onOpen: { [weak self] in self?.opened(name) },
            onLine: { [weak self] line in self?.received(line, from: name) },
            onEnd: { [weak self] end in self?.ended(name, end) })
        if paused { stream.pause() }
        // Unless it already ended (then it is waiting for its retry).
        if members[name]?.retryAt == .distantFuture { members[name]?.stream = stream }
    }

    private func opened(_ name: String) {
        guard var member = members[name] else { return }
        member.openedAt = .now()
        if member.joining {
            let from = resumePoints[name] != nil ? "from just after its last event, as far as it kept them"
                : since != nil ? "from the stream's since, as far as it kept them" : "from here"
            notice(HostEventLine.memberJoined, name, "\(name) joined the cluster; its events follow \(from)")
        } else if member.down {
            notice(HostEventLine.memberReachable, name, "\(name)'s event stream is open again; the events it kept since its last line follow")
        }
        member.joining = false
        member.down = false
        members[name] = member
    }

    private func ended(_ name: String, _ end: MemberLineStream.End) {
        guard var member = members[name] else { return }
        let now = NIODeadline.now()
        if let openedAt = member.openedAt, now - openedAt >= timing.maxBackOff {
            member.backOff = timing.firstBackOff
        } else {
            member.backOff = member.backOff == .zero ? timing.firstBackOff : min(member.backOff * 2, timing.maxBackOff)
        }
        if !member.down {
            let who = member.joining ? "\(name) joined the cluster, but its event stream" : "\(name)'s event stream"
            notice(HostEventLine.memberUnreachable, name, "\(who) \(end); it is opened again after a back-off")
        }
        member.down = true
        member.joining = false
        member.stream = nil
        member.openedAt = nil
        member.retryAt = now + member.backOff
        members[name] = member
    }

    private func scheduleTick() {
        ticker = eventLoop.assumeIsolated().scheduleTask(in: timing.tick) { [weak self] in
            guard let self, self.ticker != nil else { return }
            self.reconcile()
            self.scheduleTick()
        }
    }

    /// Follows the membership: lets go of members that left, takes up those that
    /// joined or moved, and reopens those whose back-off is over.
    private func reconcile() {
        let now = NIODeadline.now()
        let secrets = generation()
        var current: [String: Peer] = [:]
        for peer in membership() { current[peer.name] = peer }
        for (name, member) in members where current[name] == nil {
            member.stream?.close()
            members[name] = nil
            departed(name)
            notice(HostEventLine.memberLeft, name, "\(name) left the cluster (it no longer answers the membership probes); no more events from it until it joins again")
        }
        for (name, peer) in current {
            guard let member = members[name] else {
                members[name] = Member(peer: peer, joining: true)
                departures.removeAll { $0 == name }
                if startPoints[name] == nil { startPoints[name] = since ?? HardwareEvent.now }
                open(name)
                continue
            }
            if member.peer.address != peer.address {
                member.stream?.close()
                if !member.down {
                    notice(HostEventLine.memberUnreachable, name, "\(name) moved from \(member.peer.address) to \(peer.address)")
                    members[name]?.down = true
                }
                members[name]?.peer = peer
                members[name]?.openedAt = nil
                open(name)
            } else if member.stream == nil, member.retryAt <= now {
                open(name)
            } else if let stream = member.stream, member.generation != secrets {
                stream.close()
                open(name)
            }
        }
    }

    /// Remembers where `name` resumes for a while after it left, not for ever.
    private func departed(_ name: String) {
        departures.removeAll { $0 == name }
        departures.append(name)
        while departures.count > Self.rememberedDepartures {
            let forgotten = departures.removeFirst()
            resumePoints[forgotten] = nil
            startPoints[forgotten] = nil
        }
    }

    /// How many members' points are kept (for tests: bounded however many came and went).
    var rememberedPoints: Int { Set(resumePoints.keys).union(startPoints.keys).count }

    private func notice(_ action: String, _ name: String, _ message: String) {
        guard !overflowed else { return }
        if pending.readableBytes > Self.maxPending + Self.noticeRoom {
            overflowed = true
            HostEventLine(notice: HostEventLine.overflow, nodeName: local.nodeName,
                          message: "the client did not read the fleet's stream in time; events were lost, reconnect").write(to: &pending)
        } else {
            HostEventLine(notice: action, nodeName: name, message: message).write(to: &pending)
        }
        wakeSoon()
    }

    /// The fleet's own notices about members: only this stream writes them.
    static let fleetNotices: Set<String> = [
        HostEventLine.memberUnreachable, HostEventLine.memberReachable, HostEventLine.memberJoined, HostEventLine.memberLeft,
    ]

    private func received(_ line: ByteBuffer, from name: String) {
        let (action, time, nodeName) = Self.stamp(of: line)
        // A member speaks for itself only: a line naming another node (a forged event,
        // or a forged gap of another member's) or a notice only the fleet's stream
        // writes ends its stream, which is named unreachable, as for a malformed line.
        guard nodeName == name else {
            members[name]?.stream?.reject("a line for node \(nodeName.map { PeerText.quoted($0) } ?? "(none)"), not \(name)")
            return
        }
        if let action, Self.fleetNotices.contains(action) {
            members[name]?.stream?.reject("a \(action) line, which only the fleet's stream writes")
            return
        }
        // Its stream ends next; the reopened one replays what the member kept.
        if action == HostEventLine.overflow { return }
        if let action, !Self.notices.contains(action), let time, time < Int64.max { resumePoints[name] = time + 1 }
        var line = line
        pending.writeBuffer(&line)
        pending.writeInteger(UInt8(ascii: "\n"))
        if pending.readableBytes > Self.maxPending, !paused {
            paused = true
            for member in members.values { member.stream?.pause() }
        }
        wakeSoon()
    }

    /// One wake per burst of lines, after the read that brought them.
    private func wakeSoon() {
        guard !wakeScheduled else { return }
        wakeScheduled = true
        eventLoop.assumeIsolated().execute {
            self.wakeScheduled = false
            self.wake?()
        }
    }

    private struct Stamp: Decodable {
        var Action: String?
        var Time: String?
        var NodeName: String?
    }

    /// A member line's `Action`, its `Time` (its clock) in nanoseconds when it reads as
    /// one, and the node it names.
    private static func stamp(of line: ByteBuffer) -> (action: String?, time: Int64?, nodeName: String?) {
        guard let stamp = try? AgentJSON.decode(Stamp.self, from: line.readableBytesView) else { return (nil, nil, nil) }
        return (stamp.Action, stamp.Time.flatMap(HardwareEvent.nanoseconds(rfc3339:)), stamp.NodeName)
    }
}
