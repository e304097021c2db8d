import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Logs refused signatures with the peer's address, at most one line per peer per
/// interval; the failures in between are counted and folded into that peer's next
/// line (`suppressed`). A client hammering the agent with bad headers cannot flood
/// the log, and one cycling through source addresses cannot grow the table: past
/// `capacity` peers, those whose interval is over are forgotten (their pending
/// count logged first), and newcomers that still find no room share one line for
/// "other peers".
final class AuthenticationFailureLog: Sendable {
    /// One line to write: a peer, the failures it stands for beyond itself.
    struct Line: Equatable, Sendable {
        var peer: String
        /// Failures from `peer` that were not logged since its previous line.
        var suppressed: Int
        /// False for the summary of a forgotten peer's pending failures.
        var isFailure: Bool = true
    }

    static let otherPeers = "other peers"

    private struct Entry {
        var lastLogged: NIODeadline
        var suppressed: Int
    }

    private struct State {
        var peers: [String: Entry] = [:]
        var others: Entry?
        /// No scan of the table for peers to forget before this.
        var nextSweep = NIODeadline.uptimeNanoseconds(0)
    }

    let capacity: Int
    let interval: TimeAmount
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(logger: Logger, capacity: Int = 4096, interval: TimeAmount = .seconds(1)) {
        self.logger = logger
        self.capacity = capacity
        self.interval = interval
    }

    /// Peers currently remembered (never more than `capacity`).
    var trackedPeers: Int {
        state.withLockedValue { $0.peers.count }
    }

    /// Who a failure is counted against: the source as the connection limit groups them
    /// (an IPv4 address, an IPv6 /64), so that one host cycling through the addresses
    /// of its /64 is one peer here too, not a line per address.
    static func peerKey(_ peer: SocketAddress?) -> String {
        ConnectionLimit.Source(peer).description
    }

    /// Records one refused request from `peer` and logs what is due.
    func record(_ failure: SignatureVerifier.Failure, peer: SocketAddress?) {
        for line in record(peer: Self.peerKey(peer), at: .now()) {
            if line.isFailure {
                logger.warning("authentication failed", metadata: [
                    "peer": "\(line.peer)", "reason": "\(Self.reason(failure))", "suppressed": "\(line.suppressed)",
                ])
            } else {
                logger.warning("authentication failures not logged yet", metadata: [
                    "peer": "\(line.peer)", "suppressed": "\(line.suppressed)",
                ])
            }
        }
    }

    /// The lines one failure from `peer` at `now` calls for: none while the peer is
    /// within its interval, else its own (and, when the table had to make room, the
    /// pending counts of the peers it forgot).
    func record(peer: String, at now: NIODeadline) -> [Line] {
        state.withLockedValue { state -> [Line] in
            if var entry = state.peers[peer] {
                let line = Self.admit(&entry, at: now, interval: interval, peer: peer)
                state.peers[peer] = entry
                return line.map { [$0] } ?? []
            }
            var lines: [Line] = []
            if state.peers.count >= capacity, now >= state.nextSweep {
                var oldest = now
                for (name, entry) in state.peers {
                    if now - entry.lastLogged >= interval {
                        state.peers[name] = nil
                        if entry.suppressed > 0 { lines.append(Line(peer: name, suppressed: entry.suppressed, isFailure: false)) }
                    } else {
                        oldest = min(oldest, entry.lastLogged)
                    }
                }
                // A scan costs the whole table: at most four a second, and none before
                // the oldest remaining interval ends if nothing could be forgotten.
                let soonest = now + .nanoseconds(interval.nanoseconds / 4)
                state.nextSweep = state.peers.count >= capacity ? max(soonest, oldest + interval) : soonest
            }
            if state.peers.count < capacity {
                state.peers[peer] = Entry(lastLogged: now, suppressed: 0)
                lines.append(Line(peer: peer, suppressed: 0))
            } else {
                var others = state.others ?? Entry(lastLogged: now - interval, suppressed: 0)
                if let line = Self.admit(&others, at: now, interval: interval, peer: Self.otherPeers) { lines.append(line) }
                state.others = others
            }
            return lines
        }
    }

    private static func admit(_ entry: inout Entry, at now: NIODeadline, interval: TimeAmount, peer: String) -> Line? {
        guard now - entry.lastLogged >= interval else {
            entry.suppressed += 1
            return nil
        }
        defer { entry = Entry(lastLogged: now, suppressed: 0) }
        return Line(peer: peer, suppressed: entry.suppressed)
    }

    static func reason(_ failure: SignatureVerifier.Failure) -> String {
        switch failure {
        case .missingHeaders: return "missing signature headers"
        case .malformedHeaders: return "malformed signature headers"
        case .invalidSignature: return "invalid signature"
        case .associationClosed: return "association closed (AGENT_SECRET_TIMEOUT)"
        }
    }
}
