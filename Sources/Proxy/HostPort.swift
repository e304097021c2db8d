import Glibc

/// One endpoint as an address setting writes it: `host[:port]`, where the host is a
/// name, an IPv4 address or an IPv6 address in brackets (`[fd00::11]`,
/// `[fd00::11]:9001`). The one parser of such text (`AGENT_CLUSTER_ADDR`, `tcp://`
/// engines, `deckhand host-info --address`), and the one way to print one back.
///
/// Strict on purpose: an IPv6 address without brackets is refused, since
/// `fd00::11:9001` reads both as an address and as an address with a port.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    /// Without brackets.
    public var host: String
    public var port: Int?

    public init(host: String, port: Int?) {
        self.host = host
        self.port = port
    }

    /// Throws what is wrong with `text`, in words an operator can act on. Port 0 (a
    /// listener's "any free port") only where `allowingPortZero`.
    public init(parsing text: some StringProtocol, allowingPortZero: Bool = false) throws(HostPortError) {
        let item = Substring(text)
        guard !item.isEmpty else { throw .empty }
        var host: Substring
        var portText: Substring?
        if item.hasPrefix("[") {
            guard let close = item.firstIndex(of: "]") else { throw .unclosedBracket(String(item)) }
            host = item[item.index(after: item.startIndex)..<close]
            guard Self.isIPv6(host) else { throw .notIPv6(String(item)) }
            let rest = item[item.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw .unclosedBracket(String(item)) }
                portText = rest.dropFirst()
            }
        } else {
            let colons = item.count(where: { $0 == ":" })
            guard colons <= 1 else { throw .ipv6WithoutBrackets(String(item)) }
            if let colon = item.firstIndex(of: ":") {
                host = item[..<colon]
                portText = item[item.index(after: colon)...]
            } else {
                host = item
            }
            guard Self.isHostName(host) else { throw .badHost(String(item)) }
        }
        if let portText {
            // Digits only (no sign, no spaces), at most five: no overflow, then the range.
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(portText), ((allowingPortZero ? 0 : 1)...65535).contains(number) else { throw .badPort(String(item)) }
            self.port = number
        } else {
            self.port = nil
        }
        self.host = String(host)
    }

    /// `host:port`, an IPv6 host in brackets; the host alone without a port.
    public var description: String {
        port.map { Self.join(host, $0) } ?? (host.contains(":") ? "[\(host)]" : host)
    }

    /// `host:port`, an IPv6 host in brackets (`[fd00::11]:9001`): for log lines,
    /// error messages and `Host` headers.
    public static func join(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// A host name or an IPv4 address: ASCII letters, digits, `.`, `-`, `_` (`isLetter`
    /// alone would let any script's letters through to the resolver).
    public static func isHostName(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.count <= 253 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-_".contains($0)) }
    }

    /// Whether `text` is an IPv6 address as `inet_pton` reads one (no zone: a
    /// link-local `%eth0` is refused).
    public static func isIPv6(_ text: some StringProtocol) -> Bool {
        var bytes = in6_addr()
        return inet_pton(AF_INET6, String(text), &bytes) == 1
    }

    /// Whether `text` is a dotted IPv4 address.
    public static func isIPv4(_ text: some StringProtocol) -> Bool {
        var bytes = in_addr()
        return inet_pton(AF_INET, String(text), &bytes) == 1
    }
}

/// Why text is not a `host[:port]`.
public enum HostPortError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    /// `[fd00::1` or `[fd00::1]9001`.
    case unclosedBracket(String)
    /// Brackets around something that is not an IPv6 address.
    case notIPv6(String)
    /// `fd00::1` or `fd00::1:9001`: which part is the port cannot be told.
    case ipv6WithoutBrackets(String)
    case badHost(String)
    case badPort(String)

    public var description: String {
        switch self {
        case .empty: return "an empty entry"
        case .unclosedBracket(let text): return "\"\(text)\": an IPv6 address is written [address] or [address]:port"
        case .notIPv6(let text): return "\"\(text)\": only an IPv6 address goes in brackets"
        case .ipv6WithoutBrackets(let text):
            return "\"\(text)\": an IPv6 address needs brackets, [address] or [address]:port, or its port cannot be told from it"
        case .badHost(let text): return "\"\(text)\": not a host name or IPv4 address"
        case .badPort(let text): return "\"\(text)\": the port must be a number from 1 to 65535"
        }
    }
}
