import Foundation
import Testing
@testable import Agent

/// Deckhand in front of Podman's Docker-compatible API (`podman system service`), a
/// real Podman started by the test under its own paths.
@Suite("Podman behind the agent", .serialized)
struct PodmanTests {
    @Test("the docker CLI reuses its connection across commands: 20 volume creates, none fails (Podman's HEAD /_ping has no length)")
    func connectionReuse() async throws {
        try await PrivateEngine.with { engine async throws in
            try await TestAgent.with(engineSocket: engine.address) { agent async throws in
                let docker = try DockerCLITests.DockerClient(agent: agent)
                defer { docker.cleanUp() }
                var failures: [String] = []
                for index in 0..<20 {
                    let created = try docker.run(["volume", "create", "dh-reuse-\(index)"])
                    if created.status != 0 { failures.append("\(index): \(created.errorOutput)") }
                }
                #expect(failures.isEmpty, "\(failures.count) of 20 failed: \(failures)")
                #expect(try engine.docker(["volume", "ls", "-q"]).output.split(separator: "\n").filter { $0.hasPrefix("dh-reuse-") }.count == 20)
            }
        }
    }

    @Test("HEAD /_ping without a length, then more on the same connection")
    func headWithoutLength() async throws {
        try await PrivateEngine.with { engine async throws in
            // Podman's own answer to HEAD has neither a length nor chunks.
            let direct = try Curl.request("HEAD", "http://d/_ping", extra: ["--unix-socket", engine.socket, "-I"])
            #expect(direct.status == 200 && direct.headers["content-length"] == nil && direct.headers["transfer-encoding"] == nil)
            try await TestAgent.with(engineSocket: engine.address) { agent async throws in
                let signature = SigningKey().headers().map { "\($0.key): \($0.value)\r\n" }.joined()
                let answers = try EngineProxyTests.onOneConnection(
                    "HEAD /_ping HTTP/1.1\r\nHost: x\r\n\(signature)\r\n"
                        + "GET /_ping HTTP/1.1\r\nHost: x\r\n\(signature)Connection: close\r\n\r\n",
                    to: agent)
                #expect(answers.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) } == ["200", "200"], "\(answers)")
                #expect(answers.hasSuffix("\r\n\r\nOK"), "\(answers)")
            }
        }
    }

    @Test("the docker CLI through Deckhand over Podman: version, ps, run -i, exec, cp both ways, attach, logs -f, volume create/ls/rm, events")
    func dockerCLI() async throws {
        try await PrivateEngine.with { engine async throws in
            try await TestAgent.with(engineSocket: engine.address) { agent async throws in
                let docker = try DockerCLITests.DockerClient(agent: agent)
                defer { docker.cleanUp() }
                // Podman's own answer, asked directly.
                let server = "{{.Server.APIVersion}} {{.Server.Version}}"
                let version = try docker.run(["version", "--format", server])
                #expect(version.status == 0, "\(version.errorOutput)")
                #expect(version.output == (try engine.docker(["version", "--format", server])).output)
                #expect(version.output.hasPrefix("1.41 4."), "\(version.output)")

                let scenarios = EngineScenarios(docker: docker, engine: { try engine.docker($0) }, prefix: "podman")
                try scenarios.runInteractive()
                let sleeper = try scenarios.execAndPs()
                try scenarios.copyBothWays(sleeper)
                let reader = try scenarios.attach()
                let ticker = try scenarios.logsFollow()

                let since = Int(Date().timeIntervalSince1970) - 1
                let volume = DockerCLITests.uniqueName("podman-vol")
                #expect(try docker.run(["volume", "create", volume]).status == 0)
                #expect(try docker.run(["volume", "ls", "-q"]).output.split(separator: "\n").contains(Substring(volume)))
                #expect(try docker.run(["volume", "rm", volume]).status == 0)
                #expect(!(try docker.run(["volume", "ls", "-q"]).output.split(separator: "\n").contains(Substring(volume))))
                let until = Int(Date().timeIntervalSince1970) + 1
                // Podman names a volume in its events' attributes, not as the actor's ID,
                // and says `remove` where Docker says `destroy` (README, "Podman").
                let window = ["events", "--since", "\(since)", "--until", "\(until)", "--filter", "type=volume",
                              "--format", "{{.Action}} {{.Actor.Attributes.name}}"]
                // Podman writes its event file a moment after the fact: under load the same
                // window is asked again (the events' own times put them in it) for up to 30 s
                // (10 s was once not enough on a loaded CI machine: no event at all).
                var events = try docker.run(window, timeout: 30)
                for _ in 0..<30 where events.status == 0 && !events.output.contains("remove \(volume)\n") {
                    usleep(1_000_000)
                    events = try docker.run(window, timeout: 30)
                }
                #expect(events.status == 0, "\(events.errorOutput)")
                #expect(events.output.contains("create \(volume)\nremove \(volume)\n"), "\(events.output)")
                _ = try engine.docker(["rm", "-f", sleeper, reader, ticker])
            }
        }
    }

    @Test("the volume browser finds Podman's volumes where Podman keeps them (its volume inspect), with and without host management")
    func volumeBrowser() async throws {
        try await PrivateEngine.with { engine async throws in
            let volume = DockerCLITests.uniqueName("podman-browse")
            #expect(try engine.docker(["volume", "create", volume]).status == 0)
            let populated = try engine.docker(["run", "--rm", "-v", "\(volume):/data", "busybox:local", "sh", "-c", "echo hello > /data/a.txt; mkdir /data/sub"])
            #expect(populated.status == 0, "\(populated.errorOutput)")
            let mountpoint = try engine.docker(["volume", "inspect", "--format", "{{.Mountpoint}}", volume]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // Podman's own folder: neither Docker's default nor the suite engine's.
            #expect(mountpoint.hasPrefix(engine.directory.path + "/"), "\(mountpoint)")
            let upload = FileManager.default.temporaryDirectory.appendingPathComponent(DockerCLITests.uniqueName("up"))
            try Data("uploaded\n".utf8).write(to: upload)
            defer { try? FileManager.default.removeItem(at: upload) }
            for hostManagement in [false, true] {
                try await TestAgent.with(engineSocket: engine.address, hostManagement: hostManagement, hostRoot: "/") { agent async throws in
                    let key = SigningKey()
                    let listed = try agent.request("GET", "/browse/ls?volumeID=\(volume)&path=/", key: key)
                    #expect(listed.status == 200, "host management \(hostManagement): \(listed.text)")
                    let names = (try? listed.json() as? [[String: Any]])?.compactMap { $0["Name"] as? String } ?? []
                    #expect(Set(names).isSuperset(of: ["a.txt", "sub"]), "\(names)")
                    let file = try agent.request("GET", "/v1/browse/\(volume)/get?path=/a.txt", key: key)
                    #expect(file.status == 200)
                    #expect(file.text == "hello\n")
                    let put = try Curl.request("POST", agent.baseURL + "/browse/put?volumeID=\(volume)", headers: key.headers(),
                                               extra: ["-F", "file=@\(upload.path);filename=up-\(hostManagement).txt", "-F", "Path=/sub"])
                    #expect(put.status == 204, "\(put.text)")
                    #expect(try String(contentsOfFile: mountpoint + "/sub/up-\(hostManagement).txt", encoding: .utf8) == "uploaded\n")
                    #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume)&path=/sub/up-\(hostManagement).txt", key: key).status == 204)
                    #expect(!FileManager.default.fileExists(atPath: mountpoint + "/sub/up-\(hostManagement).txt"))
                    // A volume Podman does not know is still a 404, a bad name a 400.
                    #expect(try agent.request("GET", "/browse/ls?volumeID=dh-no-such-volume&path=/", key: key).status == 404)
                    #expect(try agent.request("GET", "/browse/ls?volumeID=..&path=/", key: key).status == 400)
                }
            }
        }
    }

    @Test("/host/info and a console through an agent in front of Podman")
    func hostInfoAndConsole() async throws {
        try await PrivateEngine.with { engine async throws in
            let sleeper = DockerCLITests.uniqueName("podman-console")
            #expect(try engine.docker(["run", "-d", "--name", sleeper, "busybox:local", "sleep", "3600"]).status == 0)
            let created = try Curl.request("POST", "http://d/v1.41/containers/\(sleeper)/exec", body: Data(
                #"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#.utf8),
                extra: ["--unix-socket", engine.socket, "-H", "Content-Type: application/json"])
            let exec = try #require((try? created.json() as? [String: Any])?["Id"] as? String, "\(created.text)")
            try await TestAgent.with(engineSocket: engine.address, hostManagement: true, hostRoot: "/") { agent async throws in
                let key = SigningKey()
                let info = try agent.request("GET", "/v2/host/info", key: key)
                #expect(info.status == 200)
                #expect((try? info.json() as? [String: Any])?["PCIDevices"] != nil)

                let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/exec?id=\(exec)", headers: key.headers())
                #expect(status == 101)
                let console = try #require(client)
                defer { console.close() }
                try console.send("echo hel\"\"lo; exit\n")
                let result = console.wait { text, closed in closed }
                #expect(result.text.contains("hello"), "\(result.text)")
                #expect(result.closed)
                // An exec instance Podman does not know: its 404, before any upgrade.
                let unknown = try WebSocketClient.connect(
                    host: "127.0.0.1", port: agent.port, path: "/websocket/exec?id=\(String(repeating: "0", count: 64))", headers: key.headers())
                #expect(unknown.status == 404)
            }
        }
    }

    @Test("rootless: the engine and Deckhand as an ordinary user, the engine found by the same settings; what that agent cannot reach",
          arguments: [PrivateEngine.Kind.podman, .rootlessDocker])
    func rootless(kind: PrivateEngine.Kind) async throws {
        let user = try RootlessUser()
        try await PrivateEngine.with(kind, user: user) { engine async throws in
            let volume = DockerCLITests.uniqueName("rootless-vol")
            #expect(try engine.docker(["volume", "create", volume]).status == 0)
            // A file of the container's root (the user outside) and one of its uid 1000
            // (a subordinate id outside), readable by its owner only.
            let populated = try engine.docker(["run", "--rm", "-v", "\(volume):/data", "busybox:local", "sh", "-c",
                                               "echo mine > /data/mine.txt; echo theirs > /data/theirs.txt; chown 1000 /data/theirs.txt; chmod 600 /data/theirs.txt"])
            #expect(populated.status == 0, "\(populated.errorOutput)")
            let agent = try AgentProcess(environment: [
                "DOCKER_HOST": engine.address, "DECKHAND_ENGINE_SOCKET": "", "HOME": user.home,
                "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": "/",
            ], launcher: ["setpriv"] + user.launcher)
            defer { agent.stop() }
            let status = try String(contentsOfFile: "/proc/\(agent.pid)/status", encoding: .utf8)
            #expect(status.split(separator: "\n").contains { $0.hasPrefix("Uid:\t\(user.uid)\t") }, "\(status)")

            let key = SigningKey()
            let docker = try DockerCLITests.DockerClient(address: "127.0.0.1:\(agent.port)", key: key)
            defer { docker.cleanUp() }
            // The engine says it is rootless: Podman with a field of its own, Docker among its security options.
            let info = try #require(try Curl.request("GET", agent.baseURL + "/v1.41/info", headers: key.headers()).json() as? [String: Any])
            #expect(info["Rootless"] as? Bool == true || (info["SecurityOptions"] as? [String])?.contains("name=rootless") == true, "\(info)")
            // Root in the container is the user outside it.
            let inside = try docker.run(["run", "--rm", "busybox:local", "cat", "/proc/self/uid_map"])
            #expect(inside.status == 0, "\(inside.errorOutput)")
            let firstMapping = inside.output.split(separator: "\n").first?.split(separator: " ").map(String.init)
            #expect(firstMapping == ["0", "\(user.uid)", "1"], "\(inside.output)")

            // The user's own volumes: browsed where its Podman keeps them.
            let listed = try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume)&path=/", headers: key.headers())
            #expect(listed.status == 200, "\(listed.text)")
            let mine = try Curl.request("GET", agent.baseURL + "/browse/get?volumeID=\(volume)&path=/mine.txt", headers: key.headers())
            #expect(mine.text == "mine\n")
            // Not what the container wrote as another uid, nor other users' host files.
            let theirs = try Curl.request("GET", agent.baseURL + "/browse/get?volumeID=\(volume)&path=/theirs.txt", headers: key.headers())
            #expect(theirs.status == 403, "\(theirs.text)")
            #expect(try Curl.request("GET", agent.baseURL + "/browse/ls?path=/host/root", headers: key.headers()).status == 403)
            #expect(try Curl.request("GET", agent.baseURL + "/browse/get?path=/host/etc/shadow", headers: key.headers()).status == 403)
            // The hardware inventory needs no privilege.
            #expect(try Curl.request("GET", agent.baseURL + "/v2/host/info", headers: key.headers()).status == 200)
        }
    }
}
