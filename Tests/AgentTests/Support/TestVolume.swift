import Foundation
import TestCommands

/// A real Docker volume of the test engine, populated by a real container.
struct TestVolume {
    let name: String

    /// The engine's volumes folder, as the agent must be configured for it.
    static var volumesRoot: String {
        get throws {
            let info = try Command.run("docker", ["-H", "unix://" + (try TestEngine.socket), "info", "--format", "{{.DockerRootDir}}"])
            guard info.status == 0 else { throw TestSetupError("docker info failed: \(info.errorOutput)") }
            return info.output.trimmingCharacters(in: .whitespacesAndNewlines) + "/volumes"
        }
    }

    /// Creates the volume and runs `script` (busybox sh) in a container with it at /data.
    static func create(populatedBy script: String) throws -> TestVolume {
        let name = "dh-vol-\(UInt32.random(in: 0...UInt32.max))"
        let socket = try TestEngine.socket
        let created = try Command.run("docker", ["-H", "unix://" + socket, "volume", "create", name])
        guard created.status == 0 else { throw TestSetupError("volume create failed: \(created.errorOutput)") }
        let run = try Command.run("docker", ["-H", "unix://" + socket, "run", "--rm", "-v", "\(name):/data", "busybox:local", "sh", "-c", script])
        guard run.status == 0 else { throw TestSetupError("populating \(name) failed: \(run.errorOutput)") }
        return TestVolume(name: name)
    }

    /// The volume's files as the host sees them.
    var dataPath: String {
        get throws { try Self.volumesRoot + "/\(name)/_data" }
    }

    func remove() {
        if let socket = try? TestEngine.socket {
            _ = try? Command.run("docker", ["-H", "unix://" + socket, "volume", "rm", "-f", name])
        }
    }
}
