import Agent
import ArgumentParser
import Glibc

/// Where a command that asks a running agent takes the agent's shared secret from:
/// `--secret`, `--secret-file`, else the environment the agent itself reads
/// (`AGENT_SECRET`, then `AGENT_SECRET_FILE`). So `docker exec` into an agent's
/// container needs none, and no secret need be on a command line, where `ps` shows it
/// to every user of the host and a shell keeps it in its history.
struct ClientSecret: ParsableArguments {
    @Option(name: .long, help: "The agent's AGENT_SECRET, when it has one (else --secret-file, AGENT_SECRET, AGENT_SECRET_FILE). On a command line, every user's ps shows it: prefer a file.")
    var secret: String?
    @Option(name: .customLong("secret-file"), help: "A file holding the agent's secret (its first line that is not blank), e.g. the Docker secret AGENT_SECRET_FILE names.")
    var secretFile: String?

    /// Whether the command line gives a secret (the environment does not count).
    var isGiven: Bool { secret != nil || secretFile != nil }

    /// The secret to use, or nil for trust on first use. An empty or blank one, or a
    /// file with none, is an error naming where it came from.
    func resolved() throws -> String? {
        if let secret { return try Self.checked(secret, from: "--secret") }
        if let secretFile { return try Self.first(in: secretFile, from: "--secret-file") }
        if let value = getenv("AGENT_SECRET").map({ String(cString: $0) }), !value.isEmpty {
            return try Self.checked(value, from: "AGENT_SECRET")
        }
        if let path = getenv("AGENT_SECRET_FILE").map({ String(cString: $0) }), !path.isEmpty {
            return try Self.first(in: path, from: "AGENT_SECRET_FILE")
        }
        return nil
    }

    private static func checked(_ secret: String, from source: String) throws -> String {
        guard !SecretFile.isBlank(secret) else {
            throw ValidationError("\(source) is empty or blank: no agent would accept it")
        }
        return secret
    }

    private static func first(in path: String, from source: String) throws -> String {
        do {
            // Several lines are a rotation's secrets: any of them is the agent's.
            return try SecretFile.read(path)[0]
        } catch {
            throw ValidationError("\(source) \(path): expected \(error)")
        }
    }
}
