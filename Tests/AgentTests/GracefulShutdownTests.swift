import Foundation
import Testing

@Suite("Stopping on SIGTERM")
struct GracefulShutdownTests {
    @Test("a request in flight finishes, then the agent exits and accepts nothing more")
    func drainsInFlightRequests() throws {
        let name = "dh-drain-\(UInt32.random(in: 0...UInt32.max))"
        #expect(try DockerCLITests.engine(["run", "-d", "--name", name, "busybox:local", "sleep", "2"]).status == 0)
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        // The engine answers /wait only when the container exits, about 2 s from now.
        let waiting = DispatchGroup()
        let result = LockedReply()
        let url = agent.baseURL + "/v1.41/containers/\(name)/wait"
        let headers = key.headers()
        waiting.enter()
        Thread.detachNewThread {
            result.set(try? Curl.request("POST", url, headers: headers))
            waiting.leave()
        }
        usleep(700_000)
        kill(agent.pid, SIGTERM)
        usleep(300_000)
        // No new connections once stopping.
        #expect((try? Curl.request("GET", agent.baseURL + "/ping", extra: ["--max-time", "2"])) == nil)
        #expect(waiting.wait(timeout: .now() + 15) == .success)
        let reply = try #require(result.get())
        #expect(reply.status == 200)
        #expect(reply.text.contains("\"StatusCode\":0"))
        // It exits once drained, within its 10 s grace (plus room for a loaded CI machine).
        var exited = false
        let deadline = Date().addingTimeInterval(20)
        while !exited && Date() < deadline {
            exited = !agent.process.isRunning
            if !exited { usleep(50_000) }
        }
        #expect(exited)
    }
}

extension GracefulShutdownTests {
    @Test("in cluster mode, with a peer's keep-alive connection open, an idle agent exits at once")
    func exitsPromptlyWithPeerConnections() throws {
        // The agent is its own cluster: its probes keep a pooled TLS connection to its
        // own listener, as peer agents keep connections to each other in a Swarm.
        let port = try AgentProcess.freePort()
        let agent = try AgentProcess(port: port, environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_CLUSTER_ADDR": "127.0.0.1:\(port)", "DECKHAND_PROBE_INTERVAL": "0.3",
        ])
        defer { agent.stop() }
        usleep(1_500_000)
        let pooled = try Command.run("ss", ["-Htn", "state", "established", "dst", "127.0.0.1:\(port)"])
        #expect(!pooled.output.isEmpty, "no probe connection to wait for")
        let signalled = Date()
        kill(agent.pid, SIGTERM)
        while agent.process.isRunning && Date().timeIntervalSince(signalled) < 15 { usleep(20_000) }
        let took = Date().timeIntervalSince(signalled)
        #expect(!agent.process.isRunning)
        #expect(took < 2, "exited \(took) s after SIGTERM")
    }
}

private final class LockedReply: @unchecked Sendable {
    // Set once by the request thread, read after it signalled the group.
    private var reply: HTTPReply?
    private let lock = NSLock()
    func set(_ value: HTTPReply?) { lock.lock(); reply = value; lock.unlock() }
    func get() -> HTTPReply? { lock.lock(); defer { lock.unlock() }; return reply }
}
