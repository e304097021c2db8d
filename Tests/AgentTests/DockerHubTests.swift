import Foundation
import Glibc
import Testing
import TestCommands

/// `POST /v2/dockerhub` (issue 14): Docker Hub's pull-rate limit as Portainer asks for it
/// (`api/http/proxy/factory/docker/transport.go`, `proxyAgentRequest`: the registry
/// object as the body, capitalised keys, no Content-Type), against a stand-in for Docker
/// Hub's token service and registry (`fixtures/dockerhub/stand-in.py`) whose numbers
/// the answers must carry, over TLS checked against a CA the test makes with openssl.
@Suite("Docker Hub's rate limit", .serialized)
struct DockerHubTests {
    final class StandIn {
        let folder: URL
        let port: Int
        let process: ChildProcess
        var ca: String { folder.appendingPathComponent("ca.pem").path }
        var log: String { (try? String(contentsOf: folder.appendingPathComponent("requests.log"), encoding: .utf8)) ?? "" }

        init() throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dh-hub-\(UUID().uuidString)")
            self.folder = folder
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
            func openssl(_ arguments: [String]) throws {
                let result = try Command.run("openssl", arguments)
                guard result.status == 0 else { throw TestSetupError("openssl \(arguments.first ?? ""): \(result.errorOutput)") }
            }
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("ca-key.pem"),
                         "-out", path("ca.pem"), "-subj", "/CN=Deckhand test CA", "-days", "1"])
            try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("key.pem"),
                         "-out", path("req.pem"), "-subj", "/CN=127.0.0.1"])
            try Data("subjectAltName=IP:127.0.0.1,DNS:localhost\n".utf8).write(to: folder.appendingPathComponent("ext.cnf"))
            try openssl(["x509", "-req", "-in", path("req.pem"), "-CA", path("ca.pem"), "-CAkey", path("ca-key.pem"), "-CAcreateserial",
                         "-out", path("cert.pem"), "-days", "1", "-extfile", path("ext.cnf")])
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("fixtures/dockerhub/stand-in.py").path
            let process = try Command.spawn("/usr/bin/python3", [script, path("cert.pem"), path("key.pem"), path("port"), path("requests.log")],
                                        errorLog: path("stand-in.err"))
            var port: Int?
            for _ in 0..<100 where port == nil {
                port = (try? String(contentsOfFile: path("port"), encoding: .utf8)).flatMap { Int($0) }
                if port == nil { usleep(50_000) }
            }
            guard let port else {
                process.stop()
                throw TestSetupError("the Docker Hub stand-in did not start: \((try? String(contentsOfFile: path("stand-in.err"), encoding: .utf8)) ?? "")")
            }
            self.port = port
            self.process = process
        }

        deinit {
            process.stop()
            try? FileManager.default.removeItem(at: folder)
        }
    }

    static func agent(auth: String, registry: String, ca: String?) throws -> AgentProcess {
        var environment = ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_DOCKERHUB_AUTH_URL": auth, "DECKHAND_DOCKERHUB_REGISTRY_URL": registry]
        environment["DECKHAND_DOCKERHUB_CA"] = ca
        return try AgentProcess(environment: environment)
    }

    /// What Portainer sends: its registry object, most of it ignored.
    static func registryObject(authentication: Bool, username: String = "", password: String = "") -> Data {
        Data(#"{"Id":1,"Type":6,"Name":"DockerHub","URL":"docker.io","BaseURL":"","Authentication":\#(authentication),"Username":"\#(username)","Password":"\#(password)","ManagementConfiguration":null,"Gitlab":{"ProjectId":0},"Quay":{},"Ecr":{"Region":""},"RegistryAccesses":{},"Github":{"UseOrganisation":false}}"#.utf8)
    }

    @Test("anonymous and authenticated limits come from the registry's headers; bad credentials 401, missing ones 400")
    func limits() throws {
        let hub = try StandIn()
        let base = "https://127.0.0.1:\(hub.port)"
        let agent = try Self.agent(auth: base + "/token", registry: base, ca: hub.ca)
        defer { agent.stop() }
        let key = SigningKey().headers()
        func post(_ path: String, _ body: Data) throws -> HTTPReply {
            // Portainer's proxy sends no Content-Type.
            try Curl.request("POST", agent.baseURL + path, headers: key.merging(["Content-Type": ""]) { $1 }, body: body)
        }
        for path in ["/v2/dockerhub", "/dockerhub", "/v1.41/v2/dockerhub"] {
            let anonymous = try post(path, Self.registryObject(authentication: false))
            #expect(anonymous.status == 200, "\(path): \(anonymous.text)")
            #expect(try anonymous.json() as? [String: Int] == ["remaining": 76, "limit": 100], "\(path): \(anonymous.text)")
        }
        let alice = try post("/v2/dockerhub", Self.registryObject(authentication: true, username: "alice", password: "wonderland"))
        #expect(try alice.json() as? [String: Int] == ["remaining": 199, "limit": 200], "\(alice.text)")
        // Go's decoding: the keys' case does not matter.
        let lowercase = try post("/v2/dockerhub", Data(#"{"authentication":true,"USERNAME":"alice","password":"wonderland"}"#.utf8))
        #expect(try lowercase.json() as? [String: Int] == ["remaining": 199, "limit": 200], "\(lowercase.text)")
        let wrong = try post("/v2/dockerhub", Self.registryObject(authentication: true, username: "alice", password: "guess"))
        #expect(wrong.status == 401, "\(wrong.text)")
        let missing = try post("/v2/dockerhub", Self.registryObject(authentication: true))
        #expect(missing.status == 400, "\(missing.text)")
        #expect(try post("/v2/dockerhub", Data("{".utf8)).status == 400)
        #expect(try Curl.request("GET", agent.baseURL + "/v2/dockerhub", headers: key).status == 405)
        // What the stand-in saw: a token request, then a HEAD (not a GET) with that token.
        #expect(hub.log.contains("HEAD /v2/ratelimitpreview/test/manifests/latest Bearer anon"), "\(hub.log)")
        #expect(hub.log.contains("HEAD /v2/ratelimitpreview/test/manifests/latest Bearer alice"), "\(hub.log)")
        #expect(!hub.log.contains("GET /v2/"), "\(hub.log)")
    }

    @Test("unreachable, silent or untrusted: a JSON 502 within a few seconds, never a hang")
    func failures() throws {
        let hub = try StandIn()
        let key = SigningKey().headers()
        // A port nothing listens on; a listener that never accepts (TLS never starts);
        // the real stand-in without its CA (the certificate is not trusted).
        let closed = try AgentProcess.freePort()
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(listen(silent, 16) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &length) } }
        let silentPort = Int(UInt16(bigEndian: address.sin_port))
        for (what, base, ca) in [("closed port", "https://127.0.0.1:\(closed)", hub.ca as String?),
                                 ("silent listener", "https://127.0.0.1:\(silentPort)", hub.ca),
                                 ("untrusted certificate", "https://127.0.0.1:\(hub.port)", nil)] {
            let agent = try Self.agent(auth: base + "/token", registry: base, ca: ca)
            defer { agent.stop() }
            let started = Date()
            let reply = try Curl.request("POST", agent.baseURL + "/v2/dockerhub", headers: key, body: Self.registryObject(authentication: false))
            let seconds = Date().timeIntervalSince(started)
            #expect(reply.status == 502, "\(what): \(reply.text)")
            #expect((try? reply.json() as? [String: Any])?["message"] is String, "\(what): \(reply.text)")
            #expect(seconds < 8, "\(what): \(seconds) s")
        }
        #expect(!hub.log.contains("HEAD"), "the untrusted stand-in was asked anyway: \(hub.log)")

        // Trust roots that cannot be read (an image without any): the agent still starts
        // and serves; this route says why it cannot answer.
        let garbage = hub.folder.appendingPathComponent("not-a-ca.pem")
        try Data("not a certificate\n".utf8).write(to: garbage)
        let base = "https://127.0.0.1:\(hub.port)"
        let agent = try Self.agent(auth: base + "/token", registry: base, ca: garbage.path)
        defer { agent.stop() }
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key).status == 200)
        let reply = try Curl.request("POST", agent.baseURL + "/v2/dockerhub", headers: key, body: Self.registryObject(authentication: false))
        #expect(reply.status == 502 && reply.text.contains("trust roots"), "\(reply.text)")

        // A FIFO named as the trust roots: before, start-up blocked on it for good.
        let fifo = hub.folder.appendingPathComponent("fifo-ca.pem").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let blocked = try Self.agent(auth: base + "/token", registry: base, ca: fifo)
        defer { blocked.stop() }
        #expect(try Curl.request("GET", blocked.baseURL + "/_ping", headers: key).status == 200)
        let refused = try Curl.request("POST", blocked.baseURL + "/v2/dockerhub", headers: key, body: Self.registryObject(authentication: false))
        #expect(refused.status == 502 && refused.text.contains("a regular file"), "\(refused.text)")
    }
}
