import Foundation
import Proxy
import Testing
@testable import Agent
import TestCommands

/// Deckhand in front of a dockerd reached over TCP with `--tlsverify`, as
/// `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` describe it.
@Suite("The engine over TCP with TLS", .serialized)
struct EngineOverTLSTests {
    @Test("the docker CLI through Deckhand over TCP+TLS: ps, run -i, exec, attach, logs -f")
    func streamsAndHijacks() async throws {
        try await TLSEngine.with { engine async throws in
            let tls = try EngineTLS(directory: engine.certificatePath(.good), verify: true)
            try await TestAgent.with(engineSocket: engine.address, engineTLS: tls) { agent async throws in
                let docker = try DockerCLITests.DockerClient(agent: agent)
                defer { docker.cleanUp() }
                // The TLS engine's own answer (it is not the suite's other engine).
                let info = try docker.run(["info", "--format", "{{.ID}}"])
                #expect(info.status == 0, "\(info.errorOutput)")
                #expect(info.output == (try engine.docker(["info", "--format", "{{.ID}}"])).output)

                let scenarios = EngineScenarios(docker: docker, engine: { try engine.docker($0) }, prefix: "tls")
                try scenarios.runInteractive()
                let sleeper = try scenarios.execAndPs()
                let reader = try scenarios.attach()
                let ticker = try scenarios.logsFollow()
                _ = try engine.docker(["rm", "-f", sleeper, reader, ticker])
            }
        }
    }

    @Test("certificates that cannot work stop start-up with one line naming the problem; an engine gone later is a 502 naming it")
    func wrongCertificatesAndEngineGone() async throws {
        try await TLSEngine.with { engine async throws in
            let cases: [(TLSEngine.ClientFiles, String)] = [
                (.untrustedCA, "is not trusted: its certificate does not verify against \(engine.certificatePath(.untrustedCA))/ca.pem"),
                (.noClientCertificate, "requires a client certificate, and DOCKER_CERT_PATH \(engine.certificatePath(.noClientCertificate)) has no cert.pem and key.pem"),
                (.wrongKey, "\(engine.certificatePath(.wrongKey))/key.pem is not the private key of \(engine.certificatePath(.wrongKey))/cert.pem"),
                (.foreignClient, "refused the client certificate \(engine.certificatePath(.foreignClient))/cert.pem"),
            ]
            for (files, problem) in cases {
                let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: [
                    "AGENT_HOST": "127.0.0.1", "AGENT_PORT": "0", "DECKHAND_ENGINE_SOCKET": engine.address,
                    "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": engine.certificatePath(files),
                ], timeout: 30)
                #expect(result.status == 2, "\(files): \(result.errorOutput)")
                let lines = result.errorOutput.split(separator: "\n")
                #expect(lines.count == 1, "\(files): \(result.errorOutput)")
                #expect(lines.first?.contains(problem) == true, "\(files): \(result.errorOutput)")
                #expect(lines.first?.contains(engine.address) == true || files == .wrongKey, "\(files): \(result.errorOutput)")
            }

            // The right files: the real binary, told as the docker CLI is told.
            let agent = try AgentProcess(environment: [
                "DOCKER_HOST": engine.address, "DECKHAND_ENGINE_SOCKET": "",
                "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": engine.certificatePath(.good),
            ])
            let key = SigningKey()
            let ping = try Curl.request("GET", agent.baseURL + "/v1.41/_ping", headers: key.headers())
            #expect(ping.status == 200)
            #expect(ping.text == "OK")
            // `deckhand health`, with the agent's settings, asks the engine over TLS too,
            // and says what is wrong with other files.
            func health(_ files: TLSEngine.ClientFiles) throws -> CommandResult {
                try Command.run(try BuiltProducts.deckhand, ["health"], environment: [
                    "AGENT_HOST": "127.0.0.1", "AGENT_PORT": String(agent.port), "DECKHAND_ENGINE_SOCKET": engine.address,
                    "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": engine.certificatePath(files),
                ], timeout: 20)
            }
            let healthy = try health(.good)
            #expect(healthy.status == 0, "\(healthy.output)")
            #expect(healthy.output.contains("engine \(engine.address) answer"), "\(healthy.output)")
            let unhealthy = try health(.noClientCertificate)
            #expect(unhealthy.status == 1)
            #expect(unhealthy.output.contains("requires a client certificate"), "\(unhealthy.output)")
            engine.stop()
            for _ in 0..<2 {
                let reply = try Curl.request("GET", agent.baseURL + "/v1.41/containers/json", headers: key.headers())
                #expect(reply.status == 502)
                let body = try #require(try reply.json() as? [String: String])
                #expect(body["message"] == "Unable to reach the Docker engine")
                #expect(body["details"]?.hasPrefix(engine.address) == true, "\(body)")
            }
            #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
            agent.stop()
        }
    }

    @Test("engine addresses and TLS settings are read as the docker CLI reads them")
    func settings() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tcp-settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func resolve(_ environment: [String: String], flags: [Setting: String] = [:]) throws -> AgentConfiguration {
            try AgentConfiguration.resolve(flags: flags, environment: environment)
        }
        #expect(try resolve([:]).engine == .unixSocket(path: "/var/run/docker.sock"))
        #expect(try resolve(["DOCKER_HOST": "unix:///run/other.sock"]).engine == .unixSocket(path: "/run/other.sock"))
        #expect(try resolve(["DOCKER_HOST": "tcp://10.0.0.5:2376", "DECKHAND_ENGINE_SOCKET": "/run/mine.sock"]).engine == .unixSocket(path: "/run/mine.sock"))
        #expect(try resolve(["DOCKER_HOST": "tcp://10.0.0.5"], flags: [.engineSocket: "tcp://[::1]:2400"]).engine == .tcp(host: "::1", port: 2400))
        // No TLS without the TLS variables, none for a socket, the CLI's default ports.
        #expect(try resolve(["DOCKER_HOST": "tcp://engine.example"]).engineTLS == nil)
        #expect(try resolve(["DOCKER_HOST": "unix:///run/d.sock", "DOCKER_TLS_VERIFY": "1"]).engineTLS == nil)
        let verified = try resolve(["DOCKER_HOST": "tcp://engine.example", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": folder.path])
        #expect(verified.engineTLS?.verify == true)
        #expect(verified.engineTLS?.caFile == nil)
        #expect(try verified.engineTransport().description == "tcp://engine.example:2376")
        #expect(try resolve(["DOCKER_HOST": "tcp://engine.example"]).engineTransport().description == "tcp://engine.example:2375")
        #expect(try resolve(["DOCKER_HOST": "tcp://e:1", "DOCKER_CERT_PATH": folder.path]).engineTLS?.verify == false)
        #expect(try resolve(["DOCKER_HOST": "tcp://e:1", "DOCKER_TLS_VERIFY": "1", "HOME": folder.path]).engineTLS?.directory == folder.path + "/.docker")
        for invalid in ["ssh://user@host", "tcp://", "tcp://host:99999", "relative.sock", "unix://relative.sock", "tcp://a:1,b:2"] {
            #expect(throws: ConfigurationError.self, "\(invalid)") { try resolve(["DOCKER_HOST": invalid]) }
        }
        // Half a client certificate is refused, naming the file that is missing.
        try Data("not a certificate".utf8).write(to: folder.appendingPathComponent("cert.pem"))
        do {
            _ = try resolve(["DOCKER_HOST": "tcp://e:1", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": folder.path])
            Issue.record("half a client certificate was accepted")
        } catch {
            #expect("\(error)".contains("key.pem is missing"), "\(error)")
        }
    }
}
