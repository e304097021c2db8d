import Crypto
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Proxy

/// Bounds the connections served at once, so that no host can keep Portainer out by
/// holding them.
///
/// A connection counts as unauthenticated until one of its requests carries a
/// signature the agent accepts (`authenticated(_:)`). When every slot is taken, a new
/// connection gets the slot of an unauthenticated one that has had `grace` to sign
/// on: the oldest of the source (an IPv4 address, or an IPv6 /64, the block one host
/// is usually given) that holds the most such connections. A host that opens
/// connections and then says nothing, or too little, only ever makes room with its own
/// connections; one that Portainer has signed on is never taken, and neither is one
/// Portainer has just opened (a handshake and a signed request take milliseconds), so
/// a flood from many sources cannot take Portainer's new connections one by one. Only
/// when no slot can be taken (every connection has signed on or is that young) is a
/// new one closed on arrival. The operator learns of either from the
/// log, at most once a second each. It knows every connection it admitted, so that
/// shutdown can close what is left, and what admitted each one's latest request, so
/// that a secret's rotation can close those it no longer admits (`closeRevoked`).
final class ConnectionLimit: Sendable {
    /// What admitted a connection's latest request: the secret its Portainer signature
    /// signs, and the peer key of a forwarded request's proof.
    struct Credential: Sendable, Equatable {
        var signature: Insecure.MD5Digest?
        var peerKey: PeerKey.KeyID?
    }

    /// How long a new connection has to sign on before its slot may be given to another.
    static let grace = TimeAmount.seconds(2)

    let maximum: Int
    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    /// Where a connection comes from, as this limit groups them.
    struct Source: Hashable, CustomStringConvertible {
        let bytes: [UInt8]

        init(_ address: SocketAddress?) {
            guard let address, let bytes = ClientAllowlist.addressBytes(address) else {
                self.bytes = []  // a unix socket: one source
                return
            }
            let unmapped = ClientAllowlist.unmapped(bytes)
            self.bytes = unmapped.count == 16 ? Array(unmapped[..<8]) : unmapped
        }

        var description: String {
            switch bytes.count {
            case 4:
                return bytes.map(String.init).joined(separator: ".")
            case 8:
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes + [UInt8](repeating: 0, count: 8)) }
                return (SocketAddress(address, host: "").ipAddress ?? "?") + "/64"
            default:
                return "unix socket"
            }
        }
    }

    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        /// The connections not yet authenticated, by source, oldest first.
        var unauthenticated: [Source: [ObjectIdentifier]] = [:]
        var sourceOf: [ObjectIdentifier: Source] = [:]
        var admittedAt: [ObjectIdentifier: NIODeadline] = [:]
        var credentials: [ObjectIdentifier: Credential] = [:]
        var lastRefusalWarning = NIODeadline.uptimeNanoseconds(0)
        var lastEvictionWarning = NIODeadline.uptimeNanoseconds(0)
        /// The most connections open at once since `takePeak`.
        var peak = 0

        mutating func markAuthenticated(_ id: ObjectIdentifier) {
            admittedAt[id] = nil
            guard let source = sourceOf.removeValue(forKey: id) else { return }
            unauthenticated[source]?.removeAll { $0 == id }
            if unauthenticated[source]?.isEmpty == true { unauthenticated[source] = nil }
        }

        mutating func remove(_ id: ObjectIdentifier) {
            open[id] = nil
            credentials[id] = nil
            markAuthenticated(id)
        }

        /// Takes the oldest unauthenticated connection admitted before `cutoff` of the
        /// source holding the most of them (of the sources holding as many, the oldest
        /// such connection) out of the books; nil when there is none.
        mutating func takeEvictionCandidate(admittedBefore cutoff: NIODeadline) -> (channel: Channel, source: Source, held: Int)? {
            var best: (source: Source, oldest: ObjectIdentifier, held: Int, since: NIODeadline)?
            for (source, ids) in unauthenticated {
                // Oldest first: those past their grace are a prefix.
                let held = ids.prefix { (admittedAt[$0] ?? cutoff) < cutoff }.count
                guard held > 0, let since = admittedAt[ids[0]] else { continue }
                // The most held; between sources holding as many, the oldest connection.
                if best == nil || held > best!.held || held == best!.held && since < best!.since { best = (source, ids[0], held, since) }
            }
            guard let best, let channel = open[best.oldest] else { return nil }
            remove(best.oldest)
            return (channel, best.source, best.held)
        }
    }

    private enum Admission {
        case admitted(evicted: (channel: Channel, source: Source, held: Int)?, warn: Bool)
        case refused(warn: Bool)
    }

    init(maximum: Int, logger: Logger) {
        self.maximum = maximum
        self.logger = logger
    }

    /// Connections admitted and not yet closed.
    var openCount: Int {
        state.withLockedValue { $0.open.count }
    }

    /// Counts `channel` in, making room if need be (see the type), or closes it when
    /// every slot is held by an authenticated connection.
    func admit(_ channel: Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let source = Source(channel.remoteAddress)
        let admission = state.withLockedValue { state -> Admission in
            let now = NIODeadline.now()
            var evicted: (channel: Channel, source: Source, held: Int)?
            if state.open.count >= maximum {
                evicted = state.takeEvictionCandidate(admittedBefore: now - Self.grace)
                guard evicted != nil else {
                    let warn = now - state.lastRefusalWarning >= .seconds(1)
                    if warn { state.lastRefusalWarning = now }
                    return .refused(warn: warn)
                }
            }
            state.open[id] = channel
            state.sourceOf[id] = source
            state.admittedAt[id] = now
            state.unauthenticated[source, default: []].append(id)
            state.peak = max(state.peak, state.open.count)
            var warn = false
            if evicted != nil {
                warn = now - state.lastEvictionWarning >= .seconds(1)
                if warn { state.lastEvictionWarning = now }
            }
            return .admitted(evicted: evicted, warn: warn)
        }
        switch admission {
        case .admitted(let evicted, let warn):
            channel.closeFuture.whenComplete { [state] _ in state.withLockedValue { $0.remove(id) } }
            if let evicted {
                evicted.channel.close(promise: nil)
                if warn {
                    logger.warning("connection limit reached: closed the oldest unauthenticated connection of the source holding the most", metadata: [
                        "limit": "\(maximum)", "setting": "DECKHAND_MAX_CONNECTIONS", "source": "\(evicted.source)",
                        "unauthenticated_from_source": "\(evicted.held)",
                    ])
                }
            }
            return true
        case .refused(let warn):
            if warn {
                logger.warning("connection limit reached: every connection is authenticated or was opened under 2 s ago, refusing new ones", metadata: [
                    "limit": "\(maximum)", "setting": "DECKHAND_MAX_CONNECTIONS", "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                ])
            }
            channel.close(promise: nil)
            return false
        }
    }

    /// `channel` carried a request with a signature (or a peer's proof) the agent
    /// accepted: from now on its slot is never given to another connection, and it is
    /// held to `credential` until its next such request.
    func admitted(_ channel: Channel, by credential: Credential) {
        let id = ObjectIdentifier(channel)
        state.withLockedValue { state in
            // A connection closed meanwhile is not recorded again.
            guard state.open[id] != nil else { return }
            state.markAuthenticated(id)
            state.credentials[id] = credential
        }
    }

    /// Closes every connection whose latest request was admitted by a credential that
    /// `stillValid` refuses (a secret a rotation dropped), whatever it carries: a
    /// stream of logs or events, an exec session, a peer's event stream. Returns how
    /// many it closed.
    func closeRevoked(_ stillValid: (Credential) -> Bool) -> Int {
        let held = state.withLockedValue { state in
            state.credentials.compactMap { id, credential in state.open[id].map { ($0, credential) } }
        }
        let revoked = held.filter { !stillValid($0.1) }.map(\.0)
        for channel in revoked { channel.close(promise: nil) }
        return revoked.count
    }

    /// The most connections open at once since the last call, and how many are open now.
    func takePeak() -> (peak: Int, open: Int) {
        state.withLockedValue { state in
            defer { state.peak = state.open.count }
            return (state.peak, state.open.count)
        }
    }

    /// Closes every connection still open (TLS close_notify first); returns how many.
    func closeAll() -> Int {
        let channels = state.withLockedValue { Array($0.open.values) }
        for channel in channels { channel.close(promise: nil) }
        return channels.count
    }
}
