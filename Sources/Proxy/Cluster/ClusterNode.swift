/// A node of the Swarm as the agents name it: its engine's node name and its role.
/// The one node type: the local engine's answer (`NodeIdentity`), a peer agent found
/// by its probe (`ClusterMember`) and each part of a fan-out all carry one.
public struct ClusterNode: Sendable, Hashable {
    /// The engine's `docker info` Name: the node name Portainer targets.
    public var name: String
    /// A Swarm manager (`Swarm.ControlAvailable` for the local engine, the probe's
    /// `NodeRole` for a peer).
    public var isManager: Bool

    public init(name: String, isManager: Bool) {
        self.name = name
        self.isManager = isManager
    }

    /// `manager` or `worker`, as Portainer and the probe spell it.
    public var role: String { isManager ? "manager" : "worker" }
}
