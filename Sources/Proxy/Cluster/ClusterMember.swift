import FoundationEssentials

/// One agent of the cluster, as its last probe answered.
public struct ClusterMember: Sendable, Equatable {
    /// The node name its engine reports.
    public var nodeName: String
    public var isManager: Bool
    /// Its address on the cluster network, as the cluster address resolved to.
    public var host: String
    public var port: Int
    /// The agent software's version, as it reported it.
    public var version: String

    public init(nodeName: String, isManager: Bool, host: String, port: Int, version: String) {
        self.nodeName = nodeName
        self.isManager = isManager
        self.host = host
        self.port = port
        self.version = version
    }

    public var role: String { isManager ? "manager" : "worker" }

    /// The member that answered the membership probe at `host:port` with `info`.
    public init(answer info: MemberInfo, host: String, port: Int) {
        self.init(nodeName: info.NodeName, isManager: info.NodeRole == "manager", host: host, port: port, version: info.Version)
    }
}

/// A member as the fan-out uses it: who it is, and the keep-alive connections to
/// its agent.
public struct ClusterPeer: Sendable {
    public var member: ClusterMember
    public var pool: UpstreamPool
}

/// What an agent tells a peer that probes it, and nothing more: this exchange
/// happens before any Portainer request, so it carries no signature.
public struct MemberInfo: Codable, Sendable, Equatable {
    public var NodeName: String
    public var NodeRole: String
    public var Version: String

    public init(NodeName: String, NodeRole: String, Version: String) {
        self.NodeName = NodeName
        self.NodeRole = NodeRole
        self.Version = Version
    }
}

extension MemberInfo {
    /// Reads a peer's answer to the membership probe (its body, JSON). Throws on
    /// anything else: the peer is not trusted to send what it should.
    public init(probeAnswer body: some Sequence<UInt8>) throws {
        self = try JSONDecoder().decode(MemberInfo.self, from: Data(body))
    }
}
