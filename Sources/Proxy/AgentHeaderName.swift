/// The names of the headers of the agent protocol, each spelled once: those Portainer
/// sends and reads, and Deckhand's own between peers (`X-PortainerAgent-Deckhand-*`).
public enum AgentHeaderName {
    /// The node a request is for (Portainer's target header).
    public static let target = "X-PortainerAgent-Target"
    /// Non-empty when the request must reach a manager's engine.
    public static let managerOperation = "X-PortainerAgent-ManagerOperation"
    /// Portainer's signing key, hex of its DER form.
    public static let publicKey = "X-PortainerAgent-PublicKey"
    /// Portainer's signature of its message, unpadded base64.
    public static let signature = "X-PortainerAgent-Signature"
    /// The members an aggregated list is missing, comma-separated.
    public static let unreachableNodes = "X-PortainerAgent-Unreachable-Nodes"
    /// Marks a request one agent forwarded to another, so it is never forwarded again.
    public static let hop = "X-PortainerAgent-Deckhand-Hop"
    /// Probe request header: the prober's challenge.
    public static let challenge = "X-PortainerAgent-Deckhand-Challenge"
    /// Probe answer header (the MAC alone) and forwarded request header (a token).
    public static let proof = "X-PortainerAgent-Deckhand-Proof"
    /// On every response: Deckhand's version.
    public static let agentVersion = "Portainer-Agent"
    /// On every response: the agent API generation Portainer expects.
    public static let apiVersion = "Portainer-Agent-API-Version"
    /// On every response: the platform, 1 for Docker.
    public static let platform = "Portainer-Agent-Platform"
}
