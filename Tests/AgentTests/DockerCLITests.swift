import Foundation
import Testing
@testable import Agent
import TestCommands

/// The unmodified `docker` CLI talking to the engine through Deckhand, with the
/// signature headers in its config file as Portainer users do it.
@Suite("The docker CLI through the agent")
struct DockerCLITests {
    /// A docker CLI configured for one agent: config dir with HttpHeaders, a ca.pem.
    struct DockerClient {
        let address: String
        let configDirectory: URL

        init(agent: TestAgent, key: SigningKey = SigningKey()) throws {
            try self.init(address: "127.0.0.1:\(agent.port)", key: key)
        }

        /// A CLI for the agent at `address`; `headers` are added to every request
        /// (e.g. `X-PortainerAgent-Target`), as Portainer users do in HttpHeaders.
        init(address: String, key: SigningKey, headers: [String: String] = [:]) throws {
            self.address = address
            configDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("docker-cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: configDirectory, withIntermediateDirectories: true)
            let config = ["HttpHeaders": key.headers().merging(headers) { $1 }]
            try JSONSerialization.data(withJSONObject: config).write(to: configDirectory.appendingPathComponent("config.json"))
            // docker wants a ca.pem even with verification off; any certificate will do.
            let identity = try TLSIdentity.selfSigned()
            let der = try identity.certificateChain[0].toDERBytes()
            let pem = "-----BEGIN CERTIFICATE-----\n" + Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]) + "\n-----END CERTIFICATE-----\n"
            try Data(pem.utf8).write(to: configDirectory.appendingPathComponent("ca.pem"))
        }

        func run(_ arguments: [String], input: Data? = nil, timeout: TimeInterval = 60) throws -> CommandResult {
            try Command.run(
                "docker",
                ["--config", configDirectory.path, "-H", "tcp://\(address)", "--tls"] + arguments,
                environment: ["DOCKER_CERT_PATH": configDirectory.path, "DOCKER_CLI_HINTS": "false"],
                input: input, timeout: timeout)
        }

        func cleanUp() {
            try? FileManager.default.removeItem(at: configDirectory)
        }
    }

    /// The engine directly, for set-up that is not under test.
    static func engine(_ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try Command.run("docker", ["-H", "unix://" + (try TestEngine.socket)] + arguments, input: input)
    }

    static func withDocker(_ body: (DockerClient) async throws -> Void) async throws {
        try await TestAgent.with { agent async throws in
            let docker = try DockerClient(agent: agent)
            defer { docker.cleanUp() }
            try await body(docker)
        }
    }

    static func uniqueName(_ prefix: String) -> String {
        "dh-\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }

    @Test("docker version and ps")
    func versionAndPs() async throws {
        try await Self.withDocker { docker async throws in
            // The engine's own answer, asked directly, not a version pinned here.
            let server = "{{.Server.APIVersion}} {{.Server.Version}} {{.Server.GitCommit}}"
            let engine = try Self.engine(["version", "--format", server])
            #expect(engine.status == 0, "\(engine.errorOutput)")
            let version = try docker.run(["version", "--format", server])
            #expect(version.status == 0, "\(version.errorOutput)")
            #expect(version.output == engine.output)
            let name = Self.uniqueName("ps")
            #expect(try Self.engine(["create", "--name", name, "busybox:local", "true"]).status == 0)
            defer { _ = try? Self.engine(["rm", "-f", name]) }
            let ps = try docker.run(["ps", "-a", "--format", "{{.Names}}"])
            #expect(ps.status == 0, "\(ps.errorOutput)")
            #expect(ps.output.split(separator: "\n").contains(Substring(name)))
        }
    }

    @Test("docker volume create, ls and rm")
    func volumes() async throws {
        try await Self.withDocker { docker async throws in
            let name = Self.uniqueName("vol")
            #expect(try docker.run(["volume", "create", name]).status == 0)
            #expect(try docker.run(["volume", "ls", "-q"]).output.split(separator: "\n").contains(Substring(name)))
            #expect(try docker.run(["volume", "rm", name]).status == 0)
            #expect(!(try docker.run(["volume", "ls", "-q"]).output.split(separator: "\n").contains(Substring(name))))
        }
    }

    @Test("docker run --rm -i: stdin flows in, EOF reaches the container, output comes back")
    func runInteractiveWithHalfClose() async throws {
        try await Self.withDocker { docker async throws in
            var input = ""
            for line in 0..<2000 { input += "line \(line) of the stdin that cat must echo back\n" }
            let result = try docker.run(["run", "--rm", "-i", "busybox:local", "cat"], input: Data(input.utf8), timeout: 60)
            #expect(result.status == 0, "\(result.errorOutput)")
            #expect(result.output == input)
        }
    }

    @Test("docker exec, with and without stdin")
    func exec() async throws {
        try await Self.withDocker { docker async throws in
            let name = Self.uniqueName("exec")
            #expect(try Self.engine(["run", "-d", "--name", name, "busybox:local", "sleep", "3600"]).status == 0)
            defer { _ = try? Self.engine(["rm", "-f", name]) }
            let plain = try docker.run(["exec", name, "echo", "hello from exec"])
            #expect(plain.status == 0, "\(plain.errorOutput)")
            #expect(plain.output == "hello from exec\n")
            let piped = try docker.run(["exec", "-i", name, "wc", "-c"], input: Data(repeating: 0x61, count: 100_000))
            #expect(piped.status == 0, "\(piped.errorOutput)")
            #expect(piped.output.trimmingCharacters(in: .whitespacesAndNewlines) == "100000")
        }
    }

    @Test("docker logs -f streams until the container exits")
    func logsFollow() async throws {
        try await Self.withDocker { docker async throws in
            let name = Self.uniqueName("logs")
            let script = "for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done"
            #expect(try Self.engine(["run", "-d", "--name", name, "busybox:local", "sh", "-c", script]).status == 0)
            defer { _ = try? Self.engine(["rm", "-f", name]) }
            let started = Date()
            let logs = try docker.run(["logs", "-f", name], timeout: 30)
            #expect(logs.status == 0, "\(logs.errorOutput)")
            #expect(logs.output == (1...5).map { "tick \($0)\n" }.joined())
            // It followed the container to its end rather than returning at once.
            #expect(Date().timeIntervalSince(started) > 1.0)
        }
    }

    @Test("docker cp into and out of a container keeps every byte")
    func copyBothWays() async throws {
        try await Self.withDocker { docker async throws in
            let name = Self.uniqueName("cp")
            #expect(try Self.engine(["run", "-d", "--name", name, "busybox:local", "sleep", "3600"]).status == 0)
            defer { _ = try? Self.engine(["rm", "-f", name]) }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(Self.uniqueName("cpdir"))
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            var generator = SystemRandomNumberGenerator()
            let original = Data((0..<375_000).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64, Array.init) })
            try original.write(to: dir.appendingPathComponent("payload.bin"))
            let copyIn = try docker.run(["cp", dir.appendingPathComponent("payload.bin").path, "\(name):/tmp/payload.bin"])
            #expect(copyIn.status == 0, "\(copyIn.errorOutput)")
            let copyOut = try docker.run(["cp", "\(name):/tmp/payload.bin", dir.appendingPathComponent("back.bin").path])
            #expect(copyOut.status == 0, "\(copyOut.errorOutput)")
            #expect(try Data(contentsOf: dir.appendingPathComponent("back.bin")) == original)
        }
    }

    @Test("docker events --since/--until returns what happened in the window")
    func events() async throws {
        try await Self.withDocker { docker async throws in
            let since = Int(Date().timeIntervalSince1970) - 1
            let name = Self.uniqueName("ev")
            #expect(try Self.engine(["volume", "create", name]).status == 0)
            #expect(try Self.engine(["volume", "rm", name]).status == 0)
            let until = Int(Date().timeIntervalSince1970) + 1
            let events = try docker.run(
                ["events", "--since", "\(since)", "--until", "\(until)", "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}"],
                timeout: 30)
            #expect(events.status == 0, "\(events.errorOutput)")
            #expect(events.output.contains("create \(name)"))
            #expect(events.output.contains("destroy \(name)"))
        }
    }

    @Test("docker load streams an image archive in")
    func imageLoad() async throws {
        try await Self.withDocker { docker async throws in
            let tag = "busybox:" + Self.uniqueName("load")
            #expect(try Self.engine(["tag", "busybox:local", tag]).status == 0)
            let saved = try Self.engine(["save", tag])
            #expect(saved.status == 0)
            #expect(try Self.engine(["rmi", tag]).status == 0)
            let load = try docker.run(["load"], input: saved.stdout)
            #expect(load.status == 0, "\(load.errorOutput)")
            #expect(load.output.contains("Loaded image: \(tag)"))
            _ = try Self.engine(["rmi", tag])
        }
    }
}
