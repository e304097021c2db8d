import Foundation
import Testing
import TestCommands

/// The docker CLI scenarios any engine behind Deckhand must pass (dockerd over
/// TCP+TLS, Podman): `docker` goes through the agent, `engine` straight to the
/// engine, for set-up. Each returns the containers it made, for the caller to remove.
struct EngineScenarios {
    let docker: DockerCLITests.DockerClient
    let engine: ([String]) throws -> CommandResult
    /// Names the scenario's containers (`dh-<prefix>-…`).
    let prefix: String

    /// `run --rm -i`: 2000 lines of stdin through cat and back, EOF reaching the container.
    func runInteractive() throws {
        var input = ""
        for line in 0..<2000 { input += "line \(line) of the stdin that cat must echo back\n" }
        let run = try docker.run(["run", "--rm", "-i", "busybox:local", "cat"], input: Data(input.utf8))
        #expect(run.status == 0, "\(run.errorOutput)")
        #expect(run.output == input)
    }

    /// A sleeping container that `ps` lists, and `exec` in it with and without stdin.
    func execAndPs() throws -> String {
        let sleeper = DockerCLITests.uniqueName("\(prefix)-exec")
        #expect(try engine(["run", "-d", "--name", sleeper, "busybox:local", "sleep", "3600"]).status == 0)
        let plain = try docker.run(["exec", sleeper, "echo", "hello from exec"])
        #expect(plain.output == "hello from exec\n", "\(plain.errorOutput)")
        let piped = try docker.run(["exec", "-i", sleeper, "wc", "-c"], input: Data(repeating: 0x61, count: 100_000))
        #expect(piped.status == 0, "\(piped.errorOutput)")
        #expect(piped.output.trimmingCharacters(in: .whitespacesAndNewlines) == "100000")
        let ps = try docker.run(["ps", "--format", "{{.Names}}"])
        #expect(ps.status == 0, "\(ps.errorOutput)")
        #expect(ps.output.split(separator: "\n").contains(Substring(sleeper)))
        return sleeper
    }

    /// attach (`start -a -i` attaches before it starts, so nothing is missed): stdin
    /// reaches the container, its answer comes back, and the stream ends with the
    /// container. (`docker attach` itself gives up at its stdin's end.)
    func attach() throws -> String {
        let reader = DockerCLITests.uniqueName("\(prefix)-attach")
        #expect(try engine(["create", "-i", "--name", reader, "busybox:local", "sh", "-c", "read line; echo \"got $line\""]).status == 0)
        let attach = try docker.run(["start", "-a", "-i", reader], input: Data("hello through the agent\n".utf8), timeout: 30)
        #expect(attach.status == 0, "\(attach.errorOutput)")
        #expect(attach.output == "got hello through the agent\n")
        return reader
    }

    /// `logs -f` follows a container to its end rather than returning at once.
    func logsFollow() throws -> String {
        let ticker = DockerCLITests.uniqueName("\(prefix)-logs")
        let script = "for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done"
        #expect(try engine(["run", "-d", "--name", ticker, "busybox:local", "sh", "-c", script]).status == 0)
        let started = Date()
        let logs = try docker.run(["logs", "-f", ticker], timeout: 30)
        #expect(logs.status == 0, "\(logs.errorOutput)")
        #expect(logs.output == (1...5).map { "tick \($0)\n" }.joined())
        #expect(Date().timeIntervalSince(started) > 1.0)
        return ticker
    }

    /// `cp` into and out of `container` keeps every byte.
    func copyBothWays(_ container: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(DockerCLITests.uniqueName("\(prefix)-cp"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = Data((0..<300_000).map { _ in UInt8.random(in: 0...255) })
        try original.write(to: folder.appendingPathComponent("payload.bin"))
        let copyIn = try docker.run(["cp", folder.appendingPathComponent("payload.bin").path, "\(container):/tmp/payload.bin"])
        #expect(copyIn.status == 0, "\(copyIn.errorOutput)")
        let copyOut = try docker.run(["cp", "\(container):/tmp/payload.bin", folder.appendingPathComponent("back.bin").path])
        #expect(copyOut.status == 0, "\(copyOut.errorOutput)")
        #expect(try Data(contentsOf: folder.appendingPathComponent("back.bin")) == original)
    }
}
