import Foundation
import TestCommands

/// A real engine of the test's own, started under a temp folder by a script of the
/// repository, stopped and removed afterwards, with busybox:local in it: Podman's
/// Docker-compatible API (`podman system service`, `scripts/podman`: its own storage,
/// run root, containers.conf and events file), or, for a user, a rootless dockerd
/// (`scripts/engine` run as that user).
final class PrivateEngine {
    enum Kind {
        case podman
        /// dockerd; rootless, as it must run as a user.
        case rootlessDocker
    }

    let kind: Kind
    let directory: URL
    var socket: String { directory.appendingPathComponent(kind == .podman ? "podman.sock" : "docker.sock").path }
    var address: String { "unix://" + socket }

    private var scriptPath: String {
        LabSwarm.repositoryRoot.appendingPathComponent(kind == .podman ? "scripts/podman" : "scripts/engine").path
    }

    /// The docker CLI straight to the engine's socket, for set-up and for comparison.
    func docker(_ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try Command.run("docker", ["-H", address] + arguments, input: input)
    }

    /// Runs as this user when set: a rootless engine.
    let user: RootlessUser?

    private init(kind: Kind, user: RootlessUser?) throws {
        self.kind = kind
        self.user = user
        // Under /tmp with a short name: the socket path must fit in 108 bytes.
        directory = URL(fileURLWithPath: "/tmp/engine-\(UInt32.random(in: 0...UInt32.max))")
        if let user {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            guard chown(directory.path, user.uid, user.gid) == 0, chmod(directory.path, 0o700) == 0 else {
                throw TestSetupError("cannot give \(directory.path) to \(user.name)")
            }
        }
        let started = try script(["start", directory.path], timeout: 60)
        guard started.status == 0 else { throw TestSetupError("\(kind) did not start: \(started.errorOutput)") }
        let image = try script(["image", directory.path], timeout: 120)
        guard image.status == 0 else { throw TestSetupError("busybox:local on \(kind): \(image.errorOutput)") }
    }

    /// The engine's script, as the engine's user: its socket in its `XDG_RUNTIME_DIR` (the folder).
    private func script(_ arguments: [String], timeout: TimeInterval) throws -> CommandResult {
        guard let user else { return try Command.run(scriptPath, arguments, timeout: timeout) }
        return try Command.run("setpriv", user.launcher + [
            "env", "HOME=\(user.home)", "XDG_RUNTIME_DIR=\(directory.path)", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", scriptPath,
        ] + arguments, timeout: timeout)
    }

    func stop() {
        _ = try? script(["stop", directory.path], timeout: 60)
    }

    /// Runs `body` with a fresh engine (rootless as `user`), stopped and removed
    /// afterwards, whatever happens.
    static func with<T>(_ kind: Kind = .podman, user: RootlessUser? = nil, _ body: (PrivateEngine) async throws -> T) async throws -> T {
        let engine = try PrivateEngine(kind: kind, user: user)
        defer {
            engine.stop()
            _ = try? Command.run("rm", ["-rf", engine.directory.path], timeout: 60)
        }
        return try await body(engine)
    }
}

/// An ordinary user for rootless engines and agents, made once (with subordinate ids
/// for its user namespace) when the machine does not have it yet.
struct RootlessUser {
    let name = "deckhand-rootless"
    let uid: uid_t
    let gid: gid_t
    let home: String

    /// `setpriv` arguments that run what follows as this user.
    var launcher: [String] { ["--reuid", "\(uid)", "--regid", "\(gid)", "--init-groups"] }

    init() throws {
        if try Command.run("id", ["-u", name]).status != 0 {
            let added = try Command.run("useradd", ["--create-home", "--shell", "/bin/sh", name])
            guard added.status == 0 else { throw TestSetupError("useradd \(name): \(added.errorOutput)") }
        }
        let name = self.name
        for file in ["/etc/subuid", "/etc/subgid"] {
            let entries = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            if !entries.split(separator: "\n").contains(where: { $0.hasPrefix("\(name):") }) {
                let added = try Command.run("sh", ["-c", "echo \"$1:300000:65536\" >> \"$2\"", "sh", name, file])
                guard added.status == 0 else { throw TestSetupError("\(file): \(added.errorOutput)") }
            }
        }
        guard let entry = getpwnam(name) else { throw TestSetupError("no user \(name)") }
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
        home = String(cString: entry.pointee.pw_dir)
    }
}
