import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Proxy

/// `DECKHAND_ALLOWED_CLIENTS`: the addresses and networks a connection may come from.
/// Checked at accept, before TLS and before any byte is read; the cluster's own
/// members are let in besides (`AgentServer` asks the membership).
///
/// IPv4 and IPv6, single addresses or CIDR networks. A client reaching an agent that
/// listens on IPv6 with an IPv4 address arrives as `::ffff:a.b.c.d`: it is matched as
/// the IPv4 address it is.
package struct ClientAllowlist: Sendable, Equatable, CustomStringConvertible {
    /// One address or network: its bytes (4 or 16) and how many leading bits count.
    struct Network: Sendable, Equatable, CustomStringConvertible {
        var address: [UInt8]
        var prefixLength: Int

        /// `address` or `address/prefix`; nil when it is neither. Bits past the prefix
        /// must be zero (`10.0.0.1/8` is refused: it reads like a typo for a host).
        init?(_ text: Substring) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let bytes = ClientAllowlist.addressBytes(String(parts[0])) else { return nil }
            let width = bytes.count * 8
            var length = width
            if parts.count == 2 {
                // Digits only: no sign, no spaces, at most three of them.
                guard let prefix = Int(parts[1]), parts[1].count <= 3, parts[1].allSatisfy(\.isASCII),
                      parts[1].allSatisfy(\.isNumber), (0...width).contains(prefix) else { return nil }
                length = prefix
            }
            for bit in length..<width where bytes[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0 { return nil }
            // An IPv4-mapped network is the IPv4 network it maps, as clients are matched.
            if bytes.count == 16, length >= 96, ClientAllowlist.unmapped(bytes).count == 4 {
                self.address = ClientAllowlist.unmapped(bytes)
                self.prefixLength = length - 96
                return
            }
            self.address = bytes
            self.prefixLength = length
        }

        func contains(_ bytes: [UInt8]) -> Bool {
            guard bytes.count == address.count else { return false }
            let whole = prefixLength / 8
            guard bytes[..<whole] == address[..<whole] else { return false }
            let rest = prefixLength % 8
            guard rest > 0 else { return true }
            let mask = UInt8(0xFF) << UInt8(8 - rest)
            return bytes[whole] & mask == address[whole] & mask
        }

        var description: String {
            var text = address.count == 4
                ? address.map(String.init).joined(separator: ".")
                : stride(from: 0, to: 16, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }.joined(separator: ":")
            if prefixLength != address.count * 8 { text += "/\(prefixLength)" }
            return text
        }
    }

    var networks: [Network]

    /// A comma- or space-separated list; nil if any entry is not an address or network,
    /// or if there is none.
    init?(_ text: String) {
        var networks: [Network] = []
        for entry in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            guard let network = Network(entry) else { return nil }
            networks.append(network)
        }
        guard !networks.isEmpty else { return nil }
        self.networks = networks
    }

    /// The first entry of `text` that is not an address or network, for the start-up error.
    static func firstInvalidEntry(_ text: String) -> String? {
        text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).first { Network($0) == nil }.map(String.init)
    }

    func allows(_ address: SocketAddress?) -> Bool {
        guard let bytes = address.flatMap(Self.addressBytes) else { return false }
        return allows(bytes)
    }

    func allows(_ bytes: [UInt8]) -> Bool {
        let bytes = Self.unmapped(bytes)
        return networks.contains { $0.contains(bytes) }
    }

    package var description: String { networks.map(\.description).joined(separator: ",") }

    /// The bytes of a textual IPv4 or IPv6 address (IPv6 may be written in brackets).
    static func addressBytes(_ text: String) -> [UInt8]? {
        var text = text
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: v6) { Array($0) }
        }
        return nil
    }

    /// The address bytes of a connection's peer; nil for a unix socket.
    static func addressBytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }

    /// `::ffff:a.b.c.d` as the IPv4 address it carries.
    static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count == 16, bytes[..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return bytes }
        return Array(bytes[12...])
    }
}

/// Applies the allowlist to each accepted connection: one from elsewhere (and not a
/// cluster agent) is closed before anything is read from it. The operator learns of it
/// from the log, at most one line a second, which counts the refusals it stands for.
final class ClientAdmission: Sendable {
    let allowlist: ClientAllowlist?
    private let cluster: ClusterMembership?
    private let logger: Logger
    private let lastLine = NIOLockedValueBox((at: NIODeadline.uptimeNanoseconds(0), unlogged: 0))

    init(allowlist: ClientAllowlist?, cluster: ClusterMembership?, logger: Logger) {
        self.allowlist = allowlist
        self.cluster = cluster
        self.logger = logger
    }

    /// Whether `channel` may be served; if not, it is closed.
    func admit(_ channel: Channel) -> Bool {
        guard let allowlist else { return true }
        let remote = channel.remoteAddress
        if allowlist.allows(remote) || cluster?.isClusterAddress(remote) == true { return true }
        channel.close(promise: nil)
        let refused: Int? = lastLine.withLockedValue { last in
            let now = NIODeadline.now()
            guard now - last.at >= .seconds(1) else {
                last.unlogged += 1
                return nil
            }
            defer { last = (now, 0) }
            return last.unlogged + 1
        }
        if let refused {
            logger.warning("connection from an address not in DECKHAND_ALLOWED_CLIENTS closed", metadata: [
                "peer": "\(remote?.ipAddress ?? "?")", "refused": "\(refused)",
            ])
        }
        return false
    }
}
