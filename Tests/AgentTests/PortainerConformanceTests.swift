import Foundation
import NIOHTTP1
import Proxy
import Testing
@testable import Agent
import TestCommands

/// A replay of what a Portainer CE server and its web UI send to an agent, read from
/// Portainer's source (github.com/portainer/portainer at tag 2.21.4, which vendors
/// github.com/docker/docker v26.1.5 as its Docker client). Each test names the file
/// and function it replays; `docs/portainer-protocol.md` lists the same points.
@Suite("Portainer conformance: what Portainer CE 2.21.4 sends, against a real dockerd")
struct PortainerConformanceTests {
    /// Portainer's key pair, made with Go's crypto as api/crypto/ecdsa.go does
    /// (fixtures/signatures), so no part of Deckhand's own signer is involved.
    static var portainer: IndependentPair { IndependentPair.all.first { $0.name == "go-default" }! }
    /// A second Portainer instance with a key of its own.
    static var otherPortainer: IndependentPair { IndependentPair.all.first { $0.name == "openssl-default" }! }

    /// The signature headers as Go's `http.Header.Set` writes them on the wire:
    /// canonicalised to `X-Portaineragent-Publickey` (api/docker/client/client.go,
    /// createAgentClient, through client.WithHTTPHeaders).
    static func goHeaders(_ pair: IndependentPair) -> [String: String] {
        ["X-Portaineragent-Publickey": pair.publicKey, "X-Portaineragent-Signature": pair.signature,
         "User-Agent": "Docker-Client/26.1.5+incompatible (linux)"]
    }

    static func engine(_ method: String, _ path: String, extra: [String] = []) throws -> HTTPReply {
        try Curl.request(method, "http://localhost" + path, extra: ["--unix-socket", try TestEngine.socket] + extra)
    }

    /// A HEAD request (curl -I reads no body).
    static func head(_ agent: TestAgent, _ path: String, headers: [String: String]) throws -> HTTPReply {
        try Curl.request("HEAD", agent.baseURL + path, headers: headers, extra: ["-I"])
    }

    /// The version docker's Go client settles on with WithAPIVersionNegotiation:
    /// its own default (api.DefaultVersion, 1.45 in v26.1) unless the engine's
    /// `API-Version` ping header is lower (client/client.go, negotiateAPIVersionPing).
    static func negotiated(_ engineVersion: String) -> String {
        let parts = { (v: String) in v.split(separator: ".").map { Int($0) ?? 0 } }
        return parts(engineVersion).lexicographicallyPrecedes(parts("1.45")) ? engineVersion : "1.45"
    }

    // MARK: 1. Adding the environment, then snapshots

    @Test("api/agent/version.go GetAgentVersionAndPlatform: unsigned GET /ping is exactly 204 with Portainer-Agent and Portainer-Agent-Platform: 1")
    func addEnvironmentPing() async throws {
        try await TestAgent.with { agent async throws in
            let reply = try agent.request("GET", "/ping")
            #expect(reply.status == 204)  // anything else: "Failed request with status"
            #expect(reply.body.isEmpty)
            #expect(!(reply.headers["portainer-agent"] ?? "").isEmpty)  // "Version Header is missing"
            // strconv.Atoi, then PlatformDocker == 1 (api/portainer.go AgentPlatformDocker).
            #expect(reply.headers["portainer-agent-platform"] == "1")
        }
    }

    @Test("api/docker/snapshot.go snapshot(): the Docker client's ping and every list a snapshot reads, in X = min(1.45, engine)")
    func snapshot() async throws {
        let name = "dh-conf-snap-\(UInt32.random(in: 0...UInt32.max))"
        let run = try DockerCLITests.engine(["run", "-d", "--name", name, "busybox:local", "sleep", "3600"])
        guard run.status == 0 else { throw TestSetupError("docker run failed: \(run.errorOutput)") }
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let ownID = run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        try await TestAgent.with { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            // client/ping.go Ping: HEAD /_ping first, unversioned; the engine's API-Version
            // header drives negotiation, so it must come through unchanged.
            let head = try Self.head(agent, "/_ping", headers: headers)
            let engineHead = try Self.engine("HEAD", "/_ping", extra: ["-I"])
            #expect(head.status == 200)
            let engineVersion = try #require(engineHead.headers["api-version"])
            #expect(head.headers["api-version"] == engineVersion)
            let get = try agent.request("GET", "/_ping", headers: headers)
            #expect(get.status == 200)
            #expect(get.text == "OK")
            #expect(get.headers["api-version"] == engineVersion)

            let v = "/v" + Self.negotiated(engineVersion)
            // snapshotInfo: cli.Info.
            let info = try agent.request("GET", v + "/info", headers: headers)
            #expect(info.status == 200)
            let engineInfo = try #require(try Self.engine("GET", v + "/info").json() as? [String: Any])
            #expect((try info.json() as? [String: Any])?["ID"] as? String == engineInfo["ID"] as? String)
            // snapshotSwarmServices and snapshotNodes (on a standalone engine the engine's
            // own refusal, which Portainer logs and goes past).
            for path in ["/services", "/nodes"] {
                let reply = try agent.request("GET", v + path, headers: headers)
                let direct = try Self.engine("GET", v + path)
                #expect(reply.status == direct.status, "\(path)")
                #expect(reply.body == direct.body, "\(path)")
            }
            // snapshotContainers: ContainerList{All: true}, then ContainerInspect of each running one.
            let list = try agent.request("GET", v + "/containers/json?all=1", headers: headers)
            #expect(list.status == 200)
            #expect(list.headers["content-type"] == "application/json")
            let containers = try #require(try list.json() as? [[String: Any]])
            #expect(containers.contains { $0["Id"] as? String == ownID })
            for container in containers where container["State"] as? String == "running" {
                let id = try #require(container["Id"] as? String)
                let inspect = try agent.request("GET", v + "/containers/\(id)/json", headers: headers)
                if id == ownID {
                    #expect(inspect.status == 200)
                    #expect((try inspect.json() as? [String: Any])?["Id"] as? String == ownID)
                } else {
                    // Other suites remove their containers at any time.
                    #expect(inspect.status == 200 || inspect.text.contains("No such container"), "\(inspect.status) \(inspect.text)")
                }
            }
            // snapshotImages, snapshotVolumes, snapshotNetworks, snapshotVersion.
            let images = try agent.request("GET", v + "/images/json", headers: headers)
            #expect(images.status == 200)
            #expect((try images.json() as? [[String: Any]])?.isEmpty == false)
            let volumes = try agent.request("GET", v + "/volumes", headers: headers)
            #expect(volumes.status == 200)
            #expect((try volumes.json() as? [String: Any])?.keys.contains("Volumes") == true)
            let networks = try agent.request("GET", v + "/networks", headers: headers)
            #expect(networks.status == 200)
            #expect((try networks.json() as? [[String: Any]]) != nil)
            let version = try agent.request("GET", v + "/version", headers: headers)
            #expect(version.status == 200)
            #expect(version.body == (try Self.engine("GET", v + "/version")).body)
        }
    }

    // MARK: 2. A second Portainer

    @Test("client/ping.go Ping: a second Portainer's HEAD /_ping is neither 200 nor 500 (so it falls back to GET), and GET says Invalid request signature")
    func secondPortainer() async throws {
        try await TestAgent.with { agent async throws in
            let first = Self.goHeaders(Self.portainer)
            #expect(try Self.head(agent, "/_ping", headers: first).status == 200)
            let second = Self.goHeaders(Self.otherPortainer)
            let head = try Self.head(agent, "/_ping", headers: second)
            #expect(head.status != 200 && head.status != 500, "\(head.status)")
            let get = try agent.request("GET", "/_ping", headers: second)
            #expect(get.status == 403)
            #expect(get.text.contains("Invalid request signature"))
            // The first one is still served.
            #expect(try agent.request("GET", "/_ping", headers: first).status == 200)
        }
    }

    // MARK: 3. Header names as Go writes them

    @Test("header names are matched case-insensitively: Go's canonical forms and Portainer's constants (api/portainer.go)")
    func headerCase() async throws {
        try await TestAgent.with { agent async throws in
            let pair = Self.portainer
            for (publicKeyName, signatureName) in [
                ("X-Portaineragent-Publickey", "X-Portaineragent-Signature"),
                ("X-PortainerAgent-PublicKey", "X-PortainerAgent-Signature"),
                ("x-portaineragent-publickey", "x-portaineragent-signature"),
            ] {
                let reply = try agent.request("GET", "/v1.41/version", headers: [publicKeyName: pair.publicKey, signatureName: pair.signature])
                #expect(reply.status == 200, "\(publicKeyName)")
            }
        }
    }

    @Test("api/http/handler/websocket/proxy.go and the UI's agentInterceptor: an empty X-Portaineragent-Target is no target")
    func emptyTarget() async throws {
        try await TestAgent.with { agent async throws in
            // curl sends a header with an empty value when it ends in ';'.
            let empty = try Curl.request("GET", agent.baseURL + "/v1.41/version", headers: Self.goHeaders(Self.portainer),
                                         extra: ["-H", "X-Portaineragent-Target;", "-H", "X-Portaineragent-Sa-Token;"])
            #expect(empty.status == 200)
            #expect(empty.body == (try Self.engine("GET", "/v1.41/version")).body)
        }
    }

    @Test("portainer/agent http/handler/docker/docker_operation.go dockerOperation: X-PortainerAgent-ManagerOperation wins over X-PortainerAgent-Target, whatever the case of the names",
          arguments: [
            (["X-Portaineragent-Manageroperation": "1", "X-Portaineragent-Target": "node3"], "/v1.41/containers/json", ClusterScope.manager),
            (["x-portaineragent-manageroperation": "1", "x-portaineragent-target": "node3"], "/v1.41/images/json", .manager),
            (["X-Portaineragent-Target": "node3"], "/v1.41/containers/json", .node("node3")),
            (["X-Portaineragent-Target": ""], "/v1.41/containers/json", .aggregate(.array)),
            (["X-Portaineragent-Target": "", "X-Portaineragent-Manageroperation": ""], "/v1.41/version", .local),
          ])
    func managerOperationWins(headers: [String: String], path: String, expected: ClusterScope) {
        let head = HTTPHeaders(headers.map { ($0.key, $0.value) })
        #expect(Router.scope(for: .engine, method: .GET, uri: path, headers: head) == expected)
    }

    // MARK: 4. The UI's paths

    @Test("app/portainer/services/dockerMaxApiVersionInterceptor.ts: agent routes behind a /v1.41 prefix")
    func versionPrefixedAgentRoutes() async throws {
        try await TestAgent.with { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            #expect(try agent.request("GET", "/v1.41/ping").status == 204)
            #expect(try agent.request("GET", "/v1.41/v2/ping").status == 204)
            let agents = try agent.request("GET", "/v1.41/v2/agents", headers: headers)
            let plain = try agent.request("GET", "/v2/agents", headers: headers)
            // The original's standalone answer (agent http/handler/agent/agent_list.go).
            #expect(agents.status == 503)
            #expect(try agents.json() as? [String: String] == plain.json() as? [String: String])
            #expect((try agents.json() as? [String: String])?["message"] == "Agent management is not available when running the agent on a standalone engine")
        }
        try await TestAgent.with(hostManagement: true) { agent async throws in
            // app/agent/rest/host.js: `${API_ENDPOINT_ENDPOINTS}/:endpointId/docker/v2/host/:action`.
            for path in ["/v2/host/info", "/v1.41/v2/host/info"] {
                let reply = try agent.request("GET", path, headers: Self.goHeaders(Self.portainer))
                #expect(reply.status == 200, "\(path)")
                let body = try #require(try reply.json() as? [String: Any], "\(path)")
                #expect(body.keys.contains("PCIDevices") && body.keys.contains("PhysicalDisks"), "\(path)")
            }
        }
    }

    /// The volume the UI browses: a file and two folders at its root.
    static func browsedVolume() throws -> TestVolume {
        try TestVolume.create(populatedBy: "echo first > /data/a.txt; mkdir /data/sub /data/empty; echo inner > /data/sub/in.txt")
    }

    /// ng-file-upload's body for `Upload.upload({url, data: {file, Path}})`: parts in the
    /// order of the data object's keys, so `file` comes before `Path`.
    static func uploadBody(boundary: String, filename: String, content: String, path: String) -> Data {
        Data(("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\n"
            + "Content-Type: text/plain\r\n\r\n\(content)\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n\(path)\r\n--\(boundary)--\r\n").utf8)
    }

    @Test("app/agent/components/volume-browser/volumeBrowserController.js through app/agent/rest/browse.js (/v2/browse)")
    func volumeBrowser() async throws {
        let volume = try Self.browsedVolume()
        defer { volume.remove() }
        let data = try volume.dataPath
        try await TestAgent.with { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            let q = "volumeID=\(volume.name)"
            // $onInit: state.path is '/'; ls must be an array ($resource isArray: true).
            let root = try agent.request("GET", "/v2/browse/ls?\(q)&path=/", headers: headers)
            #expect(root.status == 200)
            let items = try #require(try root.json() as? [[String: Any]])
            let byName = Dictionary(uniqueKeysWithValues: items.compactMap { item in (item["Name"] as? String).map { ($0, item) } })
            #expect(Set(byName.keys) == ["a.txt", "sub", "empty"])
            #expect(byName["sub"]?["Dir"] as? Bool == true)
            #expect(byName["a.txt"]?["Size"] as? Int == 6)
            #expect(byName["a.txt"]?["ModTime"] is Int)
            // An empty folder is [] (a null would break isArray).
            let empty = try agent.request("GET", "/v2/browse/ls?\(q)&path=/empty", headers: headers)
            #expect(empty.status == 200)
            #expect(empty.text.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            // buildPath('/', 'sub') is '/sub'.
            let sub = try agent.request("GET", "/v2/browse/ls?\(q)&path=/sub", headers: headers)
            #expect((try sub.json() as? [[String: Any]])?.map { $0["Name"] as? String } == ["in.txt"])
            // At the root, downloadAsync, renameAsync and confirmDelete send bare names.
            let file = try agent.request("GET", "/v2/browse/get?\(q)&path=a.txt", headers: headers)
            #expect(file.status == 200)
            #expect(file.text == "first\n")
            let renamed = try agent.request("PUT", "/v2/browse/rename?\(q)", headers: headers.merging(["Content-Type": "application/json;charset=utf-8"]) { $1 },
                                            body: Data(#"{"CurrentFilePath":"a.txt","NewFilePath":"b.txt"}"#.utf8))
            #expect(renamed.status == 204 || renamed.status == 200, "\(renamed.text)")
            #expect(FileManager.default.fileExists(atPath: data + "/b.txt"))
            #expect(!FileManager.default.fileExists(atPath: data + "/a.txt"))
            // volumeBrowserService.js upload: `/v2/browse/put?volumeID=`, {file, Path: state.path}.
            for (path, expected) in [("/", "/up.txt"), ("/sub", "/sub/up.txt")] {
                let boundary = "----WebKitFormBoundaryDh\(UInt32.random(in: 0...UInt32.max))"
                let put = try agent.request("POST", "/v2/browse/put?\(q)",
                                            headers: headers.merging(["Content-Type": "multipart/form-data; boundary=\(boundary)"]) { $1 },
                                            body: Self.uploadBody(boundary: boundary, filename: "up.txt", content: "uploaded", path: path))
                #expect(put.status == 204 || put.status == 200, "\(path): \(put.status) \(put.text)")
                #expect((try? String(contentsOfFile: data + expected, encoding: .utf8)) == "uploaded", "\(path)")
            }
            // The UI deletes folders with the same call as files.
            let deleted = try agent.request("DELETE", "/v2/browse/delete?\(q)&path=sub", headers: headers)
            #expect(deleted.status == 204 || deleted.status == 200, "\(deleted.text)")
            #expect(!FileManager.default.fileExists(atPath: data + "/sub"))
            // The same calls with the UI's version prefix.
            let prefixed = try agent.request("GET", "/v1.41/v2/browse/ls?\(q)&path=/", headers: headers)
            #expect(Set((try prefixed.json() as? [[String: Any]])?.compactMap { $0["Name"] as? String } ?? []) == ["b.txt", "empty", "up.txt"])
        }
    }

    @Test("app/agent/rest/v1/browse.js (BrowseVersion1): /browse/:volumeID/:action for agents of API version 1")
    func volumeBrowserV1() async throws {
        let volume = try Self.browsedVolume()
        defer { volume.remove() }
        try await TestAgent.with { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            let listed = try agent.request("GET", "/v1/browse/\(volume.name)/ls?path=/", headers: headers)
            #expect(listed.status == 200)
            #expect(Set((try listed.json() as? [[String: Any]])?.compactMap { $0["Name"] as? String } ?? []) == ["a.txt", "sub", "empty"])
            let file = try agent.request("GET", "/v1/browse/\(volume.name)/get?path=a.txt", headers: headers)
            #expect(file.text == "first\n")
            let empty = try agent.request("GET", "/v1/browse/\(volume.name)/ls?path=/empty", headers: headers)
            #expect(empty.text.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            let renamed = try agent.request("PUT", "/v1/browse/\(volume.name)/rename", headers: headers.merging(["Content-Type": "application/json;charset=utf-8"]) { $1 },
                                            body: Data(#"{"CurrentFilePath":"a.txt","NewFilePath":"c.txt"}"#.utf8))
            #expect(renamed.status == 204 || renamed.status == 200, "\(renamed.text)")
            #expect(FileManager.default.fileExists(atPath: try volume.dataPath + "/c.txt"))
            let deleted = try agent.request("DELETE", "/v1/browse/\(volume.name)/delete?path=sub", headers: headers)
            #expect(deleted.status == 204 || deleted.status == 200, "\(deleted.text)")
            #expect(!FileManager.default.fileExists(atPath: try volume.dataPath + "/sub"))
        }
    }

    @Test("app/agent/components/host-browser/hostBrowserController.js and services/hostBrowserService.js: absolute paths under /host")
    func hostBrowser() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dh-conf-host-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("etc/empty"), withIntermediateDirectories: true)
        try Data("host\n".utf8).write(to: root.appendingPathComponent("etc/motd"))
        defer { try? FileManager.default.removeItem(at: root) }
        try await TestAgent.with(hostManagement: true, hostRoot: root.path) { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            // ROOT_PATH is '/host'; buildPath appends '/name'.
            let listed = try agent.request("GET", "/v2/browse/ls?path=/host", headers: headers)
            #expect((try listed.json() as? [[String: Any]])?.compactMap { $0["Name"] as? String } == ["etc"])
            let empty = try agent.request("GET", "/v2/browse/ls?path=/host/etc/empty", headers: headers)
            #expect(empty.text.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            #expect(try agent.request("GET", "/v2/browse/get?path=/host/etc/motd", headers: headers).text == "host\n")
            let boundary = "dhboundary"
            let put = try agent.request("POST", "/v2/browse/put", headers: headers.merging(["Content-Type": "multipart/form-data; boundary=\(boundary)"]) { $1 },
                                        body: Self.uploadBody(boundary: boundary, filename: "new.txt", content: "x", path: "/host/etc"))
            #expect(put.status == 204 || put.status == 200, "\(put.text)")
            #expect(FileManager.default.fileExists(atPath: root.path + "/etc/new.txt"))
            let deleted = try agent.request("DELETE", "/v2/browse/delete?path=/host/etc", headers: headers)
            #expect(deleted.status == 204 || deleted.status == 200, "\(deleted.text)")
            #expect(!FileManager.default.fileExists(atPath: root.path + "/etc"))
        }
    }

    // MARK: 5. The console as Portainer's server opens it

    @Test("api/http/handler/websocket/exec.go websocketExec and proxy.go doProxyWebsocketRequest: text keystrokes, UTF-8 text output, resize while connected, no Cookie in the log")
    func console() async throws {
        let name = try ConsoleTests.container(["busybox:local", "sleep", "3600"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let exec = try ConsoleTests.engineJSON("POST", "/v1.41/containers/\(name)/exec",
                                               body: #"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"Cmd":["sh"]}"#)
        let id = try #require(exec["Id"] as? String)
        let cookieSecret = "dhcookie\(UInt32.random(in: 0...UInt32.max))"
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "LOG_LEVEL": "DEBUG"])
        defer { agent.stop() }
        // koding/websocketproxy copies Host and Cookie; the Director sets the rest, the
        // target and SA token empty for a Docker environment without nodeName.
        var headers = Self.goHeaders(Self.portainer)
        headers["X-Portaineragent-Target"] = ""
        headers["X-Portaineragent-Sa-Token"] = ""
        headers["Cookie"] = "portainer_api_key=\(cookieSecret); _gorilla_csrf=\(cookieSecret)"
        headers["Origin"] = "https://portainer.example.test:9443"
        let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port,
                                                           path: "/websocket/exec?endpointId=3&id=\(id)", headers: headers,
                                                           hostHeader: "portainer.example.test:9443")
        #expect(status == 101)
        let console = try #require(client)
        defer { console.close() }
        // app/docker/views/containers/console: resize with {} as the body while connected.
        let resized = try Curl.request("POST", agent.baseURL + "/v1.41/exec/\(id)/resize?h=33&w=101",
                                       headers: Self.goHeaders(Self.portainer).merging(["Content-Type": "application/json"]) { $1 },
                                       body: Data("{}".utf8))
        #expect((200..<300).contains(resized.status), "\(resized.status) \(resized.text)")
        // xterm's onData: keystrokes as text frames. The engine's TTY now says 33 101.
        try console.send("busybox stty size; echo \u{E9}t\u{E9}\"\"ok\n", opcode: .text)
        let result = console.wait(timeout: 15) { text, _ in text.contains("\u{E9}t\u{E9}ok") }
        #expect(result.text.contains("33 101"), "\(result.text.debugDescription)")
        #expect(result.text.contains("\u{E9}t\u{E9}ok"))
        try console.send("exit\n", opcode: .text)
        _ = console.wait(timeout: 10) { _, closed in closed }
        let frames = console.dataFrames
        #expect(!frames.isEmpty)
        #expect(frames.allSatisfy { $0.opcode == .text }, "opcodes: \(frames.map { "\($0.opcode)" })")
        #expect(frames.allSatisfy { String(validating: $0.payload, as: UTF8.self) != nil })
        // The same headers on requests that fail: an unknown exec, and a foreign key.
        let (unknown, _) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port,
                                                       path: "/websocket/exec?endpointId=3&id=" + String(repeating: "0", count: 64),
                                                       headers: headers, hostHeader: "portainer.example.test:9443")
        #expect(unknown == 404)
        var foreign = headers
        foreign.merge(Self.goHeaders(Self.otherPortainer)) { $1 }
        let (refused, _) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/exec?endpointId=3&id=\(id)",
                                                       headers: foreign, hostHeader: "portainer.example.test:9443")
        #expect(refused == 403)
        usleep(200_000)
        let lines = agent.logLines()
        #expect(!lines.isEmpty, "the DEBUG log is empty: nothing was checked")
        #expect(!lines.contains { $0.contains(cookieSecret) }, "a log line carries the Cookie")
    }

    @Test("api/http/handler/websocket/attach.go websocketAttach (id: the container's hex id) and containerConsoleController.js connectAttach")
    func consoleAttach() async throws {
        let name = try ConsoleTests.container(["-i", "-t", "busybox:local", "sh"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        // Portainer refuses an id that is not hexadecimal: it sends the full container ID.
        let id = try #require(try ConsoleTests.engineJSON("GET", "/v1.41/containers/\(name)/json")["Id"] as? String)
        try await TestAgent.with { agent async throws in
            var headers = Self.goHeaders(Self.portainer)
            headers["X-Portaineragent-Target"] = ""
            headers["X-Portaineragent-Sa-Token"] = ""
            let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/attach?endpointId=3&id=\(id)",
                                                               headers: headers, hostHeader: "portainer.example.test:9443")
            #expect(status == 101)
            let console = try #require(client)
            defer { console.close() }
            try console.send("echo at\"\"tached \u{4E16}\n", opcode: .text)
            let result = console.wait(timeout: 15) { text, _ in text.contains("attached \u{4E16}") }
            #expect(result.text.contains("attached \u{4E16}"), "\(result.text.debugDescription)")
            #expect(console.dataFrames.allSatisfy { $0.opcode == .text && String(validating: $0.payload, as: UTF8.self) != nil })
        }
    }

    // MARK: 6. Answers Portainer re-parses

    @Test("api/http/proxy/factory/utils/response.go getResponseBody: lists and */create answers are application/json")
    func jsonContentTypes() async throws {
        try await TestAgent.with { agent async throws in
            let headers = Self.goHeaders(Self.portainer)
            for path in ["/v1.41/containers/json?all=1", "/v1.41/images/json", "/v1.41/volumes", "/v1.41/networks"] {
                let reply = try agent.request("GET", path, headers: headers)
                #expect(reply.status == 200, "\(path)")
                #expect(reply.headers["content-type"] == "application/json", "\(path)")
            }
            let name = "dh-conf-create-\(UInt32.random(in: 0...UInt32.max))"
            defer {
                _ = try? DockerCLITests.engine(["rm", "-f", name])
                _ = try? DockerCLITests.engine(["volume", "rm", "-f", name])
                _ = try? DockerCLITests.engine(["network", "rm", name])
            }
            let json = headers.merging(["Content-Type": "application/json"]) { $1 }
            for (path, body) in [
                ("/v1.41/containers/create?name=\(name)", #"{"Image":"busybox:local","Cmd":["true"]}"#),
                ("/v1.41/volumes/create", #"{"Name":"\#(name)"}"#),
                ("/v1.41/networks/create", #"{"Name":"\#(name)","Driver":"bridge"}"#),
            ] {
                let reply = try agent.request("POST", path, headers: json, body: Data(body.utf8))
                #expect(reply.status == 201, "\(path): \(reply.text)")
                #expect(reply.headers["content-type"] == "application/json", "\(path)")
                #expect((try reply.json() as? [String: Any]) != nil, "\(path)")
            }
        }
    }
}

extension LabSuites {
    /// The same replay against agents on the real 3-node lab Swarm (node1 the manager).
    @Suite("Portainer conformance on a real 3-node Swarm", .serialized)
    struct PortainerConformanceLabTests {
        /// The lab's agents associate the key of LabCluster's start-up check: Portainer's
        /// requests here sign with it, under the names Go puts on the wire.
        static func goHeaders(_ lab: LabCluster) -> [String: String] {
            let signed = lab.key.headers()
            return ["X-Portaineragent-Publickey": lab.key.publicKeyHex,
                    "X-Portaineragent-Signature": signed.first { $0.key.lowercased() == "x-portaineragent-signature" }!.value]
        }

        static func request(_ lab: LabCluster, _ node: LabSwarm.Node, _ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil) throws -> HTTPReply {
            try Curl.request(method, "https://\(node.address):9001" + path, headers: goHeaders(lab).merging(headers) { $1 }, body: body)
        }

        @Test("api/docker/snapshot.go snapshot() through a worker's agent: the manager's /info, Swarm lists, tagged lists, and Docker's own No such container for another node's container")
        func snapshotThroughWorker() throws {
            let lab = try LabCluster()
            defer { lab.stop() }
            let (node1, node2, node3) = (lab.nodes[0], lab.nodes[1], lab.nodes[2])
            let name = ClusterTests.unique("conf-run")
            let run = try lab.engine(node3, ["run", "-d", "--name", name, "busybox:local", "sleep", "3600"])
            guard run.status == 0 else { throw TestSetupError("docker run on node3 failed: \(run.errorOutput)") }
            defer { _ = try? lab.engine(node3, ["rm", "-f", name]) }
            let remoteID = run.output.trimmingCharacters(in: .whitespacesAndNewlines)

            // client/ping.go Ping, then negotiation.
            let head = try Curl.request("HEAD", "https://\(node2.address):9001/_ping",
                                        headers: Self.goHeaders(lab), extra: ["-I"])
            #expect(head.status == 200)
            let version = try #require(head.headers["api-version"])
            let v = "/v" + PortainerConformanceTests.negotiated(version)
            // snapshotInfo: Swarm.ControlAvailable must be the manager's (true), or Portainer
            // never snapshots services and nodes.
            let info = try #require(try Self.request(lab, node2, "GET", v + "/info").json() as? [String: Any])
            #expect((info["Swarm"] as? [String: Any])?["ControlAvailable"] as? Bool == true)
            #expect(info["Name"] as? String == node1.name)
            for path in ["/services", "/nodes"] {
                let reply = try Self.request(lab, node2, "GET", v + path)
                #expect(reply.status == 200, "\(path): \(reply.text)")
                #expect((try reply.json() as? [[String: Any]]) != nil, "\(path)")
            }
            #expect((try Self.request(lab, node2, "GET", v + "/nodes").json() as? [[String: Any]])?.count == lab.nodes.count)
            // snapshotContainers: the list is every node's; inspecting, without a target, a
            // running container of another node must fail with Docker's own text.
            let list = try Self.request(lab, node2, "GET", v + "/containers/json?all=1")
            #expect(list.headers["content-type"] == "application/json")
            let containers = try #require(try list.json() as? [[String: Any]])
            #expect(containers.contains { $0["Id"] as? String == remoteID })
            let inspect = try Self.request(lab, node2, "GET", v + "/containers/\(remoteID)/json")
            #expect(inspect.status == 404)
            // The Docker client turns the JSON "message" into the error's text.
            #expect(((try? inspect.json() as? [String: Any])?["message"] as? String)?.contains("No such container") == true, "\(inspect.text)")
            // With the target Portainer's NodeNameTransport would set, it is found.
            let targeted = try Self.request(lab, node2, "GET", v + "/containers/\(remoteID)/json", headers: ["X-Portaineragent-Target": node3.name])
            #expect(targeted.status == 200)
        }

        @Test("containerConsoleController.js with nodeName, through websocket/proxy.go's Director: a console on another node, opened at a worker's agent")
        func consoleOnAnotherNode() throws {
            let lab = try LabCluster()
            defer { lab.stop() }
            let (node2, node3) = (lab.nodes[1], lab.nodes[2])
            let name = ClusterTests.unique("conf-console")
            let run = try lab.engine(node3, ["run", "-d", "--name", name, "busybox:local", "sleep", "3600"])
            guard run.status == 0 else { throw TestSetupError("docker run on node3 failed: \(run.errorOutput)") }
            defer { _ = try? lab.engine(node3, ["rm", "-f", name]) }
            // A container's host name is the start of its ID: proof the shell runs on node3.
            let shortID = String(run.output.trimmingCharacters(in: .whitespacesAndNewlines).prefix(12))
            // The UI creates the exec through the Docker proxy with the node as target
            // (HttpRequestHelper.setPortainerAgentTargetHeader, agentInterceptor).
            let target = ["X-Portaineragent-Target": node3.name]
            let created = try Self.request(lab, node2, "POST", "/v1.41/containers/\(name)/exec",
                                           headers: target.merging(["Content-Type": "application/json"]) { $1 },
                                           body: Data(#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"User":"","Cmd":["sh"]}"#.utf8))
            #expect(created.status == 201, "\(created.text)")
            let id = try #require((try created.json() as? [String: Any])?["Id"] as? String)
            var headers = Self.goHeaders(lab).merging(target) { $1 }
            headers["X-Portaineragent-Sa-Token"] = ""
            headers["Cookie"] = "portainer_api_key=x"
            let (status, client) = try WebSocketClient.connect(host: node2.address, port: 9001,
                                                               path: "/websocket/exec?endpointId=2&id=\(id)&nodeName=\(node3.name)",
                                                               headers: headers, hostHeader: "portainer.example.test:9443")
            #expect(status == 101)
            let console = try #require(client)
            defer { console.close() }
            let resized = try Self.request(lab, node2, "POST", "/v1.41/exec/\(id)/resize?h=21&w=77",
                                           headers: target.merging(["Content-Type": "application/json"]) { $1 }, body: Data("{}".utf8))
            #expect((200..<300).contains(resized.status), "\(resized.status) \(resized.text)")
            try console.send("busybox stty size; hostname\n", opcode: .text)
            let result = console.wait(timeout: 15) { text, _ in text.contains("\n" + shortID) && text.contains("21 77") }
            #expect(result.text.contains("21 77"), "\(result.text.debugDescription)")
            #expect(result.text.contains("\n" + shortID), "\(result.text.debugDescription)")
            #expect(console.dataFrames.allSatisfy { $0.opcode == .text && String(validating: $0.payload, as: UTF8.self) != nil })
        }

        @Test("api/http/proxy/factory/utils/json.go and response.go: aggregated lists are application/json and each item's Portainer is an object")
        func aggregatedLists() throws {
            let lab = try LabCluster()
            defer { lab.stop() }
            let name = ClusterTests.unique("conf-list")
            for node in lab.nodes {
                #expect(try lab.engine(node, ["volume", "create", name]).status == 0)
                #expect(try lab.engine(node, ["create", "--name", name, "-v", "\(name):/data", "busybox:local", "true"]).status == 0)
            }
            defer {
                for node in lab.nodes {
                    _ = try? lab.engine(node, ["rm", "-f", name])
                    _ = try? lab.engine(node, ["volume", "rm", "-f", name])
                }
            }
            for path in ["/v1.41/containers/json?all=1", "/v1.41/images/json", "/v1.41/networks", "/v1.41/volumes"] {
                // As the websocket proxy's Director does, an empty target header: no target.
                let reply = try Curl.request("GET", "https://\(lab.nodes[1].address):9001" + path, headers: Self.goHeaders(lab),
                                             extra: ["-H", "X-Portaineragent-Target;"])
                #expect(reply.status == 200, "\(path)")
                #expect(reply.headers["content-type"] == "application/json", "\(path)")
                let json = try reply.json()
                let items = path.hasSuffix("volumes") ? ((json as? [String: Any])?["Volumes"] as? [Any] ?? []) : (json as? [Any] ?? [])
                #expect(!items.isEmpty, "\(path)")
                var nodes: Set<String> = []
                for item in items {
                    let portainer = (item as? [String: Any])?["Portainer"]
                    #expect(portainer is [String: Any], "\(path): \(String(describing: portainer))")
                    let node = ((portainer as? [String: Any])?["Agent"] as? [String: Any])?["NodeName"] as? String
                    #expect(node != nil, "\(path)")
                    node.map { _ = nodes.insert($0) }
                }
                #expect(nodes == Set(lab.nodes.map(\.name)), "\(path): \(nodes)")
            }
        }

        @Test("portainer/agent docker_operation.go dockerOperation: X-Portaineragent-Manageroperation wins over X-Portaineragent-Target")
        func managerOperationWins() throws {
            let lab = try LabCluster()
            defer { lab.stop() }
            let names = try lab.containerOnEachNode("conf-mgr")
            defer { lab.removeContainers(names) }
            let (node1, node2, node3) = (lab.nodes[0], lab.nodes[1], lab.nodes[2])
            let reply = try Self.request(lab, node2, "GET", "/v1.41/containers/json?all=1",
                                         headers: ["X-Portaineragent-Manageroperation": "1", "X-Portaineragent-Target": node3.name])
            #expect(reply.status == 200, "\(reply.text)")
            let listed = try #require(try reply.json() as? [[String: Any]]).flatMap { $0["Names"] as? [String] ?? [] }
            #expect(listed.contains("/\(names[node1.name]!)"))
            #expect(!listed.contains("/\(names[node3.name]!)"))
            #expect(!listed.contains("/\(names[node2.name]!)"))
        }
    }
}
