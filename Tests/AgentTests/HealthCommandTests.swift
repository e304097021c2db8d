import Foundation
import Glibc
import Testing
import TestCommands

/// `deckhand health` (issue 17 item 3) against a real agent and a real engine, as a
/// Docker HEALTHCHECK runs it: the agent's settings from the environment, one line,
/// exit 0 or 1, within its timeout even when the agent hangs.
@Suite("deckhand health")
struct HealthCommandTests {
    static func health(port: Int, engine: String, timeout: String = "2") throws -> (status: Int32, lines: [Substring], seconds: Double) {
        let started = Date()
        let result = try Command.run(try BuiltProducts.deckhand, ["health", "--timeout", timeout], environment: [
            "AGENT_HOST": "127.0.0.1", "AGENT_PORT": String(port), "DECKHAND_ENGINE_SOCKET": engine,
        ], timeout: 30)
        return (result.status, result.output.split(separator: "\n"), Date().timeIntervalSince(started))
    }

    @Test("0 with one line when the agent and its engine answer; 1 naming what failed when either does not")
    func verdicts() throws {
        let engine = try TestEngine.socket
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": engine])
        defer { agent.stop() }
        let healthy = try Self.health(port: agent.port, engine: engine)
        #expect(healthy.status == 0)
        #expect(healthy.lines.count == 1 && healthy.lines.first?.hasPrefix("healthy") == true, "\(healthy.lines)")

        // The engine's socket is not there (the agent itself still answers).
        let noEngine = try Self.health(port: agent.port, engine: "/tmp/dh-no-engine-\(UUID().uuidString).sock")
        #expect(noEngine.status == 1)
        #expect(noEngine.lines.count == 1 && noEngine.lines.first?.contains("engine") == true, "\(noEngine.lines)")

        // The agent hangs (stopped, its socket still accepting): the check gives up in time.
        #expect(kill(agent.pid, SIGSTOP) == 0)
        let hung = try Self.health(port: agent.port, engine: engine, timeout: "1")
        #expect(kill(agent.pid, SIGCONT) == 0)
        #expect(hung.status == 1)
        #expect(hung.lines.count == 1 && hung.lines.first?.contains("agent") == true, "\(hung.lines)")
        #expect(hung.seconds < 8, "took \(hung.seconds) s with a 1 s timeout")

        // Nothing listens any more.
        agent.stop()
        let gone = try Self.health(port: agent.port, engine: engine)
        #expect(gone.status == 1)
        #expect(gone.lines.first?.contains("did not answer /ping") == true, "\(gone.lines)")
    }

    @Test("something else answering on the port is not a healthy agent")
    func notAnAgent() throws {
        // The engine's own API behind TLS would answer /ping with 200 or 404: here a
        // plain TLS server made by openssl, which answers anything with its status page.
        let port = try AgentProcess.freePort()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dh-health-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("key.pem").path, certificate = folder.appendingPathComponent("cert.pem").path
        #expect(try Command.run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                            "-keyout", key, "-out", certificate, "-subj", "/CN=not-an-agent", "-days", "1"]).status == 0)
        let server = try Command.spawn("openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, "-www", "-quiet"],
                                       errorLog: folder.appendingPathComponent("s_server.log").path)
        defer { server.stop() }
        let deadline = Date().addingTimeInterval(10)
        while (try? Curl.exitStatus("https://127.0.0.1:\(port)/", maxTime: 1)) != 0, Date() < deadline { usleep(100_000) }
        let result = try Self.health(port: port, engine: try TestEngine.socket)
        #expect(result.status == 1)
        #expect(result.lines.first?.contains("not a Portainer agent") == true, "\(result.lines)")
    }
}
