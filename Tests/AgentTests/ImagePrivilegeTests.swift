import Foundation
import Testing
import TestCommands

/// Issue 17 item 6: the image as `scripts/build-image` makes it, run with `docker run` on
/// the private engine the way the README's "Least privilege" section says, and checked
/// from outside: the agent process's users, groups and capabilities as the kernel shows
/// them (`/proc/<pid>/status`), its health, and what its file browser may do.
@Suite("The image under least privilege (README, \"Least privilege\")", .serialized)
struct ImagePrivilegeTests {
    init() throws {
        try ImageContainer.loadImage()
    }

    @Test("as built: user 65532, no capability, a read-only root, the engine through its socket's group; healthy")
    func nonRootByDefault() throws {
        #expect(try ImageContainer.engine(["image", "inspect", "--format", "{{.Config.User}}", "deckhand:latest"])
            .output.trimmingCharacters(in: .whitespacesAndNewlines) == "65532:65532")
        let group = try ImageContainer.socketGroup
        let volume = try TestVolume.create(populatedBy: "echo hello > /data/a.txt")
        defer { volume.remove() }
        let agent = try ImageContainer(options: ["--read-only", "--cap-drop", "ALL", "--group-add", String(group),
                                                 "-v", "\(try TestVolume.volumesRoot):/var/lib/docker/volumes"])
        defer { agent.remove() }
        try agent.waitForPing()

        let status = try agent.status()
        #expect(status.runs(as: 65532), "\(status)")
        #expect(status.gids.allSatisfy { $0 == 65532 }, "\(status)")
        #expect(status.groups.contains(group), "\(status)")
        #expect(status.effectiveCapabilities == 0 && status.boundingCapabilities == 0, "\(status)")
        #expect(try agent.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true")

        // The Docker API through the socket's group, and `deckhand health` says so.
        let key = SigningKey()
        let info = try agent.request("/v1.41/info", key: key)
        #expect(info.status == 200, "\(info.text)")
        #expect(((try? info.json()) as? [String: Any])?["ID"] != nil, "\(info.text)")
        #expect(try agent.waitForHealth() == "healthy")
        // What the README says this user cannot do: Docker's volumes are root's.
        let browsed = try agent.request("/browse/ls?volumeID=\(volume.name)&path=/", key: key)
        #expect(browsed.status == 403, "\(browsed.text)")
        // No line at level error (a warning may carry an `error=` field: on this bridge
        // network the container has no IPv6, and the agent says it listens on IPv4 only).
        let logs = try agent.logs()
        let errors = logs.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first == "error" }
        #expect(errors.isEmpty, "\(logs)")
    }

    @Test("without the socket's group: the start-up log and deckhand health name the group to add")
    func missingSocketGroup() throws {
        let group = try ImageContainer.socketGroup
        let agent = try ImageContainer(options: ["--read-only", "--cap-drop", "ALL"])
        defer { agent.remove() }
        try agent.waitForPing()
        let logs = try agent.logs()
        #expect(logs.contains("cannot use the engine socket") && logs.contains("--group-add \(group)"), "\(logs)")
        let health = try ImageContainer.engine(["exec", agent.name, "/usr/local/bin/deckhand", "health", "--timeout", "3"])
        #expect(health.status == 1)
        #expect(health.output.hasPrefix("unhealthy: the engine socket /var/run/docker.sock (uid 0, gid \(group)"), "\(health.output)")
        #expect(health.output.contains("--group-add \(group)"), "\(health.output)")
    }

    /// A host tree the browser must work on as root with the documented capabilities:
    /// a root-owned 0600 file; another user's 0700 folder holding a 0600 file; a sticky
    /// 1777 folder of that user holding a third user's file.
    struct HostTree {
        let root: String

        init() throws {
            root = "/tmp/dh-host-tree-\(UUID().uuidString)"
            let script = """
                set -e
                mkdir -m 0755 \(root) \(root)/alice \(root)/shared
                printf 'root only\\n' > \(root)/secret.txt && chmod 0600 \(root)/secret.txt
                printf 'dear diary\\n' > \(root)/alice/diary.txt && chmod 0600 \(root)/alice/diary.txt
                chown -R 1234:1234 \(root)/alice && chmod 0700 \(root)/alice
                printf 'bob\\n' > \(root)/shared/bob.txt && chown 5678:5678 \(root)/shared/bob.txt
                chown 1234:1234 \(root)/shared && chmod 1777 \(root)/shared
                """
            let made = try Command.run("sh", ["-c", script])
            guard made.status == 0 else { throw TestSetupError("host tree: \(made.errorOutput)") }
        }

        func path(_ relative: String) -> String { root + relative }
        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The host-management stack file's user and capabilities, as `docker run` options.
    static func hostManagementOptions(dropping dropped: String? = nil) throws -> (options: [String], capabilities: [String]) {
        let stack = try StackPrivileges(file: "deckhand-stack-host-management.yml")
        let user = try #require(stack.user)
        #expect(stack.capDrop == ["ALL"] && stack.readOnly)
        let capabilities = stack.capAdd.filter { $0 != dropped }
        return (["--user", user, "--read-only", "--cap-drop", "ALL"] + capabilities.flatMap { ["--cap-add", $0] }, capabilities)
    }

    @Test("host management as its stack file runs it: root with DAC_OVERRIDE and FOWNER; other users' files read, written, renamed, deleted")
    func hostManagementCapabilities() throws {
        let tree = try HostTree()
        defer { tree.remove() }
        let volume = try TestVolume.create(populatedBy: """
            mkdir /data/private && echo kept > /data/private/f && busybox chmod 0600 /data/private/f \
            && busybox chown -R 1234:1234 /data/private && busybox chmod 0700 /data/private
            """)
        defer { volume.remove() }
        let (options, capabilities) = try Self.hostManagementOptions()
        #expect(Set(capabilities) == ["DAC_OVERRIDE", "FOWNER"], "the README explains exactly these: \(capabilities)")
        let agent = try ImageContainer(options: options + ["-e", "CAP_HOST_MANAGEMENT=1", "-v", "\(tree.root):/host",
                                                           "-v", "\(try TestVolume.volumesRoot):/var/lib/docker/volumes"])
        defer { agent.remove() }
        try agent.waitForPing()
        let status = try agent.status()
        #expect(status.runs(as: 0), "\(status)")
        #expect(status.effectiveCapabilities == (try ProcessStatus.mask(capabilities)), "\(status)")
        #expect(status.boundingCapabilities == (try ProcessStatus.mask(capabilities)), "\(status)")
        #expect(try agent.waitForHealth() == "healthy")

        let key = SigningKey()
        let secret = try agent.request("/browse/get?path=/secret.txt", key: key)
        #expect(secret.status == 200 && secret.text == "root only\n", "\(secret.status) \(secret.text)")
        let listed = try agent.request("/browse/ls?path=/alice", key: key)
        #expect(((try? listed.json()) as? [[String: Any]])?.compactMap { $0["Name"] as? String } == ["diary.txt"], "\(listed.text)")
        let diary = try agent.request("/browse/get?path=/alice/diary.txt", key: key)
        #expect(diary.status == 200 && diary.text == "dear diary\n", "\(diary.status) \(diary.text)")
        let upload = FileManager.default.temporaryDirectory.appendingPathComponent("dh-upload-\(UUID().uuidString)")
        try Data("uploaded\n".utf8).write(to: upload)
        defer { try? FileManager.default.removeItem(at: upload) }
        let put = try agent.request("/browse/put", method: "POST", key: key, extra: ["-F", "file=@\(upload.path);filename=new.txt", "-F", "Path=/alice"])
        #expect(put.status == 204, "\(put.text)")
        #expect((try? String(contentsOfFile: tree.path("/alice/new.txt"), encoding: .utf8)) == "uploaded\n")
        let renamed = try agent.request("/browse/rename", method: "PUT", key: key, headers: ["Content-Type": "application/json"],
                                        body: Data(#"{"CurrentFilePath":"/alice/diary.txt","NewFilePath":"/alice/kept.txt"}"#.utf8))
        #expect(renamed.status == 204, "\(renamed.text)")
        #expect(FileManager.default.fileExists(atPath: tree.path("/alice/kept.txt")))
        #expect(try agent.request("/browse/delete?path=/alice/new.txt", method: "DELETE", key: key).status == 204)
        // Another user's file in a third user's sticky folder: FOWNER.
        let deleted = try agent.request("/browse/delete?path=/shared/bob.txt", method: "DELETE", key: key)
        #expect(deleted.status == 204, "\(deleted.text)")
        #expect(!FileManager.default.fileExists(atPath: tree.path("/shared/bob.txt")))
        // The volume browser: a container user's 0700 folder in a volume.
        let inVolume = try agent.request("/browse/get?volumeID=\(volume.name)&path=/private/f", key: key)
        #expect(inVolume.status == 200 && inVolume.text == "kept\n", "\(inVolume.status) \(inVolume.text)")
    }

    @Test("the hardware inventory needs neither root nor a capability: as 65532 with none it is what the machine's own shows")
    func inventoryUnprivileged() throws {
        let local = try Command.run(try BuiltProducts.deckhand, ["host-info", "--host-root", "/"])
        try #require(local.status == 0, "\(local.errorOutput)")
        let expected = try #require(try JSONSerialization.jsonObject(with: local.stdout) as? [String: Any])
        #expect(!((expected["PCIDevices"] as? [Any]) ?? []).isEmpty)
        let run = try ImageContainer.engine(["run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
                                             "-v", "/:/host:ro", "--entrypoint", "/usr/local/bin/deckhand", "deckhand:latest", "host-info"])
        try #require(run.status == 0, "\(run.errorOutput)")
        let seen = try #require(try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any])
        // The machine's devices; not its network interfaces or filesystems' use, which
        // other tests' engines and labs change between the two looks.
        let devices: Set<String> = ["PCIDevices", "PhysicalDisks", "GPUs", "USBDevices", "CPU", "Machine"]
        #expect(Set(seen.keys).isSuperset(of: devices.intersection(expected.keys)))
        #expect(NSDictionary(dictionary: seen.filter { devices.contains($0.key) })
            .isEqual(to: expected.filter { devices.contains($0.key) }), "\(run.output)")
    }

    @Test("each capability of the host-management stack is needed: without it one operation is refused",
          arguments: [("DAC_OVERRIDE", "GET", "/browse/get?path=/alice/diary.txt"), ("FOWNER", "DELETE", "/browse/delete?path=/shared/bob.txt")])
    func everyCapabilityNeeded(capability: String, method: String, path: String) throws {
        let tree = try HostTree()
        defer { tree.remove() }
        let (options, capabilities) = try Self.hostManagementOptions(dropping: capability)
        #expect(!capabilities.contains(capability))
        let agent = try ImageContainer(options: options + ["-e", "CAP_HOST_MANAGEMENT=1", "-v", "\(tree.root):/host"])
        defer { agent.remove() }
        try agent.waitForPing()
        #expect(try agent.status().effectiveCapabilities == (try ProcessStatus.mask(capabilities)))
        let key = SigningKey()
        let refused = try agent.request(path, method: method, key: key)
        #expect(refused.status == 403, "without \(capability): \(method) \(path) answered \(refused.status) \(refused.text)")
        // Root's own 0600 file needs no capability at all.
        #expect(try agent.request("/browse/get?path=/secret.txt", key: key).text == "root only\n")
    }
}
