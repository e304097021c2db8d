/// Deckhand's own version, and the agent protocol facts it announces.
enum AgentVersion {
    static let deckhand = "0.1.0"
    /// `Portainer-Agent-API-Version`: the agent API generation Portainer expects.
    static let apiVersion = "2"
    /// `Portainer-Agent-Platform`: 1 means Docker.
    static let platform = "1"
}
