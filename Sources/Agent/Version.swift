/// Deckhand's own version, and the agent protocol facts it announces.
package enum AgentVersion {
    package static let deckhand = "0.1.0"
    /// `Portainer-Agent-API-Version`: the agent API generation Portainer expects.
    package static let apiVersion = "2"
    /// `Portainer-Agent-Platform`: 1 means Docker.
    static let platform = "1"
}
