import FoundationEssentials

/// One agent of the cluster, as its last probe answered: its node, and where its
/// agent listens.
public struct ClusterMember: Sendable, Equatable {
    public var node: ClusterNode
    /// Its address on the cluster network, as the cluster address resolved to.
    public var host: String
    public var port: Int
    /// The agent software's version, as it reported it.
    public var version: String
    /// In secret mode, this agent's keys the member proved at its last probe: the
    /// secrets both hold. Requests signed with another secret are not sent to it.
    public var provenKeys: Set<PeerKey.KeyID> = []

    public init(nodeName: String, isManager: Bool, host: String, port: Int, version: String) {
        self.node = ClusterNode(name: nodeName, isManager: isManager)
        self.host = host
        self.port = port
        self.version = version
    }

    /// The node name its engine reports.
    public var nodeName: String { node.name }
    public var isManager: Bool { node.isManager }
    public var role: String { node.role }

    /// The member that answered the membership probe at `host:port` with `info`,
    /// once every word of it is what it should be (see `PeerText`): a name with a
    /// CR/LF in it would otherwise reach response headers and log lines.
    public init(answer info: MemberInfo, host: String, port: Int) throws(PeerRefusal) {
        guard PeerText.isNodeName(info.NodeName) else { throw .invalid("node name", info.NodeName) }
        guard info.NodeRole == "manager" || info.NodeRole == "worker" else { throw .invalid("role", info.NodeRole) }
        if let version = info.Version, !PeerText.isVersion(version) { throw .invalid("version", version) }
        self.init(nodeName: info.NodeName, isManager: info.NodeRole == "manager", host: host, port: port, version: info.Version ?? "")
    }
}

/// A member as the fan-out uses it: who it is, and the keep-alive connections to
/// its agent.
public struct ClusterPeer: Sendable {
    public var member: ClusterMember
    public var pool: UpstreamPool
}

/// What an agent tells a peer that probes it, and nothing more: this exchange
/// happens before any Portainer request, so it carries no signature. The version
/// is told only to a peer that proved it shares the secret.
public struct MemberInfo: Codable, Sendable, Equatable {
    public var NodeName: String
    public var NodeRole: String
    public var Version: String?

    public init(NodeName: String, NodeRole: String, Version: String? = nil) {
        self.NodeName = NodeName
        self.NodeRole = NodeRole
        self.Version = Version
    }
}

extension MemberInfo {
    /// Reads a peer's answer to the membership probe (its body, JSON). Throws on
    /// anything else: the peer is not trusted to send what it should. The decoder's
    /// own error is not passed on, since it may quote what the peer sent.
    public init(probeAnswer body: some Sequence<UInt8>) throws(PeerRefusal) {
        do {
            self = try JSONDecoder().decode(MemberInfo.self, from: Data(body))
        } catch {
            throw .unreadable
        }
    }
}

/// Why a probe answer did not make a member.
public enum PeerRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not the JSON of a `MemberInfo`.
    case unreadable
    /// One field is not what it may be: which, and the value as sent.
    case invalid(String, String)
    /// Secret mode: the answer carries no proof, or a wrong one.
    case unproven
    /// Another address that still answers holds this node name.
    case nameTaken(by: String)
    /// Secret mode: its TLS certificate is not vouched for under the secret (`PeerCertificate`).
    case certificateNotVouched
    /// Secret mode: it did not prove the secret this request's signature signs, so the
    /// request is not sent to it (`ClusterMembership.recipients`).
    case notHoldingSignedSecret

    /// Safe for a log line: a peer's value is quoted and cut (`PeerText.quoted`).
    public var description: String {
        switch self {
        case .unreadable: return "the answer is not a member description"
        case .invalid(let field, let value): return "invalid \(field) \(PeerText.quoted(value))"
        case .unproven: return "no valid proof of the shared secret"
        case .nameTaken(let address): return "the node name is held by \(address), which still answers"
        case .certificateNotVouched:
            return "its TLS certificate is not vouched for under the shared secret (an agent without the secret, one older than peer certificates, or an interceptor)"
        case .notHoldingSignedSecret:
            return "it did not prove the secret this request is signed with"
        }
    }
}
