import NIOCore
import NIOHTTP1
import Proxy

/// Every node's hardware events in one stream: this node's own (`LocalHostEvents`)
/// and each other member's `/v2/host/events` (`MemberLineStream`, signed and targeted
/// like the fleet's host info), interleaved line by line as they come. A member that
/// cannot be reached, refuses, sends a bad line or drops is reported once with a
/// `member-unreachable` line naming it, never silently missing.
///
/// Back-pressure: members' lines wait here up to `maxPending` bytes; beyond that every
/// member stream is paused until the client has taken them.
final class FleetHostEvents: EventLineSource {
    static let maxPending = 256 * 1024

    struct Peer {
        var name: String
        var head: HTTPRequestHead
        var pool: UpstreamPool
    }

    private let local: LocalHostEvents?
    private let peers: [Peer]
    private let eventLoop: EventLoop
    private var members: [String: MemberLineStream] = [:]
    private var pending = ByteBuffer()
    private var paused = false
    private var wake: (() -> Void)?
    private var wakeScheduled = false

    init(local: LocalHostEvents?, peers: [Peer], on eventLoop: EventLoop) {
        self.local = local
        self.peers = peers
        self.eventLoop = eventLoop
    }

    func start(wake: @escaping () -> Void) {
        self.wake = wake
        local?.start(wake: wake)
        for peer in peers {
            members[peer.name] = MemberLineStream(
                peer.head, pool: peer.pool, on: eventLoop,
                onLine: { [weak self] line in self?.received(line) },
                onEnd: { [weak self] end in self?.memberEnded(peer.name, end) })
        }
    }

    var hasOverflowed: Bool { local?.hasOverflowed ?? false }

    func take(into buffer: inout ByteBuffer) -> Bool {
        let ended = local?.take(into: &buffer) ?? false
        buffer.writeBuffer(&pending)
        pending.clear()
        if paused {
            paused = false
            for member in members.values { member.resume() }
        }
        return ended
    }

    func stop() {
        local?.stop()
        for member in members.values { member.close() }
        members = [:]
        wake = nil
    }

    private func received(_ line: ByteBuffer) {
        var line = line
        pending.writeBuffer(&line)
        pending.writeInteger(UInt8(ascii: "\n"))
        if pending.readableBytes > Self.maxPending, !paused {
            paused = true
            for member in members.values { member.pause() }
        }
        wakeSoon()
    }

    private func memberEnded(_ name: String, _ end: MemberLineStream.End) {
        members[name] = nil
        HostEventLine(notice: HostEventLine.memberUnreachable, nodeName: name, message: "\(name)'s event stream \(end)").write(to: &pending)
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
}
