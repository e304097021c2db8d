import Foundation
import TestCommands

/// The deckhand image that `scripts/test` built (`DECKHAND_TEST_IMAGE_TAR`), run with
/// `docker run -d` on the suite's private engine, on a bridge network of its own so that
/// the test reaches its port 9001 at the container's address. `remove()` takes both down.
final class ImageContainer {
    let name: String
    let network: String
    let address: String
    /// The agent process (the image's entrypoint) as the machine sees it.
    let pid: Int32

    /// Loads the image tar into the private engine (as the README's `docker load`).
    static func loadImage() throws {
        let loaded = try engine(["load", "-i", try SwarmDeployment.imageTar], timeout: 120)
        guard loaded.status == 0, loaded.output.contains("deckhand:latest") else {
            throw TestSetupError("docker load into the test engine failed (\(loaded.status)): \(loaded.output) \(loaded.errorOutput)")
        }
    }

    /// The private engine's CLI.
    static func engine(_ arguments: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        try Command.run("docker", ["-H", "unix://" + (try TestEngine.socket)] + arguments, timeout: timeout)
    }

    /// The group that owns the private engine's socket.
    static var socketGroup: UInt32 {
        get throws {
            let attributes = try FileManager.default.attributesOfItem(atPath: try TestEngine.socket)
            guard let group = (attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value else {
                throw TestSetupError("no group for \(try TestEngine.socket)")
            }
            return group
        }
    }

    /// `docker run -d` of deckhand:latest with `options` (before the image name), the
    /// engine's socket mounted where the agent looks for it.
    init(options: [String]) throws {
        let suffix = UInt32.random(in: 0...UInt32.max)
        name = "dh-image-\(suffix)"
        network = "dh-image-net-\(suffix)"
        let created = try Self.engine(["network", "create", "-d", "bridge", network])
        guard created.status == 0 else { throw TestSetupError("network create: \(created.errorOutput)") }
        let run = try Self.engine(["run", "-d", "--name", name, "--network", network,
                                   "-v", "\(try TestEngine.socket):/var/run/docker.sock"] + options + ["deckhand:latest"])
        guard run.status == 0 else {
            _ = try? Self.engine(["network", "rm", network])
            throw TestSetupError("docker run \(options): \(run.errorOutput)")
        }
        let inspected = try Self.engine(["inspect", "--format", "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name])
        let fields = inspected.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard fields.count == 2, let pid = Int32(fields[0]), pid > 0, !fields[1].isEmpty else {
            let logs = (try? Self.engine(["logs", name]))?.errorOutput ?? ""
            _ = try? Self.engine(["rm", "-f", name])
            _ = try? Self.engine(["network", "rm", network])
            throw TestSetupError("\(name) is not running: \(inspected.output)\(inspected.errorOutput) \(logs)")
        }
        self.pid = pid
        address = fields[1]
    }

    /// The agent process's users, groups and capabilities.
    func status() throws -> ProcessStatus { try ProcessStatus(pid: pid) }

    /// `docker inspect --format`.
    func inspect(_ format: String) throws -> String {
        try Self.engine(["inspect", "--format", format, name]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until the engine says `healthy` (the image's HEALTHCHECK, `deckhand health`,
    /// every 5 s) and returns the last status it saw.
    func waitForHealth(timeout: TimeInterval = 60) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var health = ""
        repeat {
            health = try inspect("{{.State.Health.Status}}")
            if health == "healthy" { return health }
            usleep(500_000)
        } while Date() < deadline
        return "\(health): \(try inspect("{{range .State.Health.Log}}{{.Output}}{{end}}"))"
    }

    /// Waits until the agent answers its public /ping.
    func waitForPing(timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? Curl.request("GET", "https://\(address):9001/ping", extra: ["--max-time", "2"]))?.status == 204 { return }
            usleep(200_000)
        }
        throw TestSetupError("\(name) does not answer /ping: \(try logs())")
    }

    /// A signed request to the agent.
    func request(_ path: String, method: String = "GET", key: SigningKey, headers: [String: String] = [:],
                 body: Data? = nil, extra: [String] = []) throws -> HTTPReply {
        try Curl.request(method, "https://\(address):9001" + path, headers: key.headers().merging(headers) { $1 }, body: body,
                         extra: ["--max-time", "15"] + extra)
    }

    /// What the agent wrote to standard output and error.
    func logs() throws -> String {
        let logs = try Self.engine(["logs", name])
        return logs.output + logs.errorOutput
    }

    /// Never throws: it runs after failed tests too.
    func remove() {
        _ = try? Self.engine(["rm", "-f", name])
        _ = try? Self.engine(["network", "rm", network])
    }
}
