import Agent
import ArgumentParser
import FoundationEssentials
import NIOCore
import NIOPosix

/// `deckhand health`: checks the agent running on this host with this environment
/// (`AGENT_HOST`, `AGENT_PORT`, `DECKHAND_ENGINE_SOCKET`), for a Docker `HEALTHCHECK`.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check the agent running here (its /ping) and its engine (/_ping on its socket).",
        discussion: "Prints one line and exits 0 when both answer, 1 otherwise. Reads the agent's own settings from the environment, as `serve` does."
    )

    @Option(name: .long, help: "Seconds each check may take (default 5).")
    var timeout: Double = 5

    func run() async throws {
        guard timeout >= 0.1, timeout <= 600 else {
            print("unhealthy: --timeout must be from 0.1 to 600 seconds")
            throw ExitCode(1)
        }
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.resolve(flags: [:], environment: ProcessInfo.processInfo.environment)
        } catch {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        }
        let check = HealthCheck(configuration: configuration, timeout: .fromSeconds(timeout))
        let (healthy, line) = await check.run(on: MultiThreadedEventLoopGroup.singleton.next())
        print(line)
        if !healthy { throw ExitCode(1) }
    }
}
