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
///   moment its stream opens, with `member-joined`;
/// - a member that leaves the membership (it stopped answering the probes, e.g. its
///   link is cut and its stream merely hangs) is let go with `member-left`.
///
/// A member's stream opens with `since` just after the last line it sent (the stream's
/// own `since` before any), so a reopened or rejoined member sends what it kept of the
/// gap (its `HardwareEventMonitor` history), and a `history-incomplete` line of its own
/// when that is not all of it (its agent restarted, or more than it keeps happened).
///
/// Back-pressure: members' lines wait here up to `maxPending` bytes; beyond that every
/// member stream is paused until the client has taken them. The stream's own lines
/// wait too, up to `noticeRoom` bytes more; past that (a client that has not read for
/// long while members came and went) the stream ends with `overflow`, as a local
/// stream's full queue does.
final class FleetHostEvents: EventLineSource {
    static let maxPending = 256 * 1024
    static let noticeRoom = 64 * 1024

    struct Timing {
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
    }

    private let local: LocalHostEvents
    private let membership: () -> [Peer]
    private let request: (ClusterMember, Int64) -> HTTPRequestHead
    /// Where a member's stream starts when none of its lines has come yet.
    private let since: Int64
    private let eventLoop: EventLoop
    private let timing: Timing
    private var members: [String: Member] = [:]
    /// Where each member's stream resumes, on its own clock: just after its last line's
    /// `Time`. Kept when a member leaves, so that one that rejoins resumes too.
    private var resumePoints: [String: Int64] = [:]
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
         since: Int64, timing: Timing = Timing(), on eventLoop: EventLoop) {
        self.timing = timing
        self.since = since
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
        let stream = MemberLineStream(
            request(member.peer.member, resumePoints[name] ?? since), pool: member.peer.pool, on: eventLoop,
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
            let from = resumePoints[name] == nil ? "from here" : "from just after its last line, as far as it kept them"
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
        var current: [String: Peer] = [:]
        for peer in membership() { current[peer.name] = peer }
        for (name, member) in members where current[name] == nil {
            member.stream?.close()
            members[name] = nil
            notice(HostEventLine.memberLeft, name, "\(name) left the cluster (it no longer answers the membership probes); no more events from it until it joins again")
        }
        for (name, peer) in current {
            guard let member = members[name] else {
                members[name] = Member(peer: peer, joining: true)
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
            }
        }
    }

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

    private func received(_ line: ByteBuffer, from name: String) {
        if let time = Self.time(of: line) { resumePoints[name] = time + 1 }
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

    private struct Timed: Decodable {
        var Time: String
    }

    /// A member line's `Time` (its clock), in nanoseconds.
    private static func time(of line: ByteBuffer) -> Int64? {
        guard let timed = try? AgentJSON.decode(Timed.self, from: line.readableBytesView) else { return nil }
        return HardwareEvent.nanoseconds(rfc3339: timed.Time)
    }
}
