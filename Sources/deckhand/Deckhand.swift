import Agent
import ArgumentParser

/// `deckhand`: the Portainer-compatible agent and its operator tools.
@main
struct Deckhand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deckhand",
        abstract: "A Portainer-compatible Docker Swarm agent.",
        version: AgentVersion.deckhand,
        subcommands: [ServeCommand.self, VersionCommand.self, KeygenCommand.self, SignCommand.self, HostInfoCommand.self, HealthCommand.self, StatusCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print Deckhand's version.")

    func run() {
        print("deckhand \(AgentVersion.deckhand) (agent API \(AgentVersion.apiVersion))")
    }
}
