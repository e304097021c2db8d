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
