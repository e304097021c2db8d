import Foundation
import NIOCore
import Testing
import TestCommands

@Suite("Stopping on SIGTERM")
struct GracefulShutdownTests {
    @Test("a request in flight finishes, then the agent exits and accepts nothing more")
    func drainsInFlightRequests() throws {
        let name = "dh-drain-\(UInt32.random(in: 0...UInt32.max))"
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        // Started after the agent, so that it cannot have exited before the agent is up.
        #expect(try DockerCLITests.engine(["run", "-d", "--name", name, "busybox:local", "sleep", "3"]).status == 0)
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let key = SigningKey()
        // The engine answers /wait only when the container exits, about 3 s from now.
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
        // The request is in flight: the container still runs and nothing has answered.
        #expect(try DockerCLITests.engine(["inspect", "-f", "{{.State.Running}}", name]).output == "true\n")
        #expect(result.answeredAt == nil)
        let signalled = Date()
        kill(agent.pid, SIGTERM)
        usleep(300_000)
        // No new connections once stopping: refused (curl's 7), not merely slow.
        #expect(try Curl.exitStatus(agent.baseURL + "/ping", maxTime: 2) == 7)
        #expect(waiting.wait(timeout: .now() + 15) == .success)
        let reply = try #require(result.get())
        #expect(reply.status == 200)
        #expect(reply.text.contains("\"StatusCode\":0"))
        #expect(try #require(result.answeredAt) > signalled.addingTimeInterval(1), "the answer came before the container could exit")
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
    /// Waits for the agent to exit; returns the seconds it took from `since`, or nil.
    static func exitTime(of agent: AgentProcess, since: Date, within seconds: Double) -> Double? {
        let deadline = since.addingTimeInterval(seconds)
        while Date() < deadline {
            if !agent.process.isRunning { return Date().timeIntervalSince(since) }
            usleep(20_000)
        }
        return nil
    }

    /// Runs `work` on its own thread; its result, and when it ended, are set once `done` is.
    private static func inBackground(_ work: @escaping @Sendable () -> CommandResult?) -> (done: DispatchGroup, result: LockedResult) {
        let done = DispatchGroup()
        let result = LockedResult()
        done.enter()
        Thread.detachNewThread {
            result.set(work(), at: Date())
            done.leave()
        }
        return (done, result)
    }

    /// An agent in its own process whose log keeps warnings (shutdown says what it cut).
    static func warningAgent() throws -> AgentProcess {
        try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "LOG_LEVEL": "WARN"])
    }

    @Test("a docker exec stream and a console open at SIGTERM are closed cleanly at once, and the agent exits")
    func closesHijackedStreams() throws {
        let name = try ConsoleTests.container(["busybox:local", "sleep", "3600"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let agent = try Self.warningAgent()
        defer { agent.stop() }
        let key = SigningKey()

        // A raw hijack: docker exec, streaming until its command ends (in 5 minutes).
        let docker = try DockerCLITests.DockerClient(address: "127.0.0.1:\(agent.port)", key: key)
        defer { docker.cleanUp() }
        let (execDone, execResult) = Self.inBackground {
            try? docker.run(["exec", name, "sh", "-c", "echo ready; exec sleep 301"], timeout: 60)
        }
        // A console: a websocket bridged to a TTY shell.
        let created = try ConsoleTests.engineJSON("POST", "/v1.41/containers/\(name)/exec",
                                                  body: #"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#)
        let id = try #require(created["Id"] as? String)
        let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/exec?id=\(id)", headers: key.headers())
        #expect(status == 101)
        let console = try #require(client)
        defer { console.close() }
        try console.send("echo con\"\"sole\n")
        #expect(console.wait { text, _ in text.contains("console") }.text.contains("console"))
        // The exec stream is up once its command runs in the container.
        var running = false
        for _ in 0..<100 where !running {
            running = (try? DockerCLITests.engine(["top", name]))?.output.contains("sleep 301") ?? false
            if !running { usleep(100_000) }
        }
        #expect(running)

        let stopped = Date()
        kill(agent.pid, SIGTERM)
        // The browser gets "going away", the docker CLI the end of its stream, both at
        // once rather than at the 10 s grace, and the agent is gone soon after.
        let closed = console.wait(timeout: 8) { _, closed in closed }
        #expect(closed.closed)
        #expect(console.closeCode == 1001)
        #expect(execDone.wait(timeout: .now() + 8) == .success)
        let (exec, ended) = execResult.get()
        #expect(exec?.output.contains("ready") == true, "docker exec: \(exec.map { "\($0.status) \($0.output) \($0.errorOutput)" } ?? "did not run")")
        if let ended { #expect(ended.timeIntervalSince(stopped) < 5) }
        let exit = Self.exitTime(of: agent, since: stopped, within: 8)
        #expect(exit != nil && exit! < 5, "exit after \(exit.map { "\($0) s" } ?? "more than 8 s")")
        #expect(!agent.logLines().contains { $0.contains("shutdown grace over") })
    }

    @Test("a connection accepted just before SIGTERM still has its first request answered")
    func answersAConnectionAcceptedBeforeTheStop() throws {
        let agent = try Self.warningAgent()
        defer { agent.stop() }
        // Connected and through TLS, but no request yet: as a client that connected
        // just before the listener closed, its request still on its way.
        let client = try LimitsTests.RawConnection(port: agent.port)
        let received = ReceivedBytes()
        try client.channel.pipeline.addHandler(received).wait()
        usleep(300_000)
        kill(agent.pid, SIGTERM)
        usleep(200_000)
        try client.send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(client.closedByServer(within: 5))
        let answer = received.text
        #expect(answer.hasPrefix("HTTP/1.1 204"), "answer: \(answer.debugDescription)")
        #expect(answer.lowercased().contains("connection: close"))
    }

    @Test("an idle client that stops reading holds the exit about a second, not TLS's default 5 s")
    func idleClientIgnoringCloseNotify() throws {
        let agent = try Self.warningAgent()
        defer { agent.stop() }
        let client = try LimitsTests.RawConnection(port: agent.port)
        try client.send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(300_000)
        // Nothing is read from now on: the agent's close_notify is never answered.
        try client.channel.setOption(ChannelOptions.autoRead, value: false).wait()
        usleep(100_000)
        let stopped = Date()
        kill(agent.pid, SIGTERM)
        let exit = Self.exitTime(of: agent, since: stopped, within: 10)
        #expect(exit != nil && exit! < 3, "exit after \(exit.map { "\($0) s" } ?? "more than 10 s")")
    }

    @Test("a request still running when the 10 s grace ends is cut off, and the agent exits")
    func boundsTheDrain() throws {
        let name = try ConsoleTests.container(["busybox:local", "sleep", "3600"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let agent = try Self.warningAgent()
        defer { agent.stop() }
        let url = agent.baseURL + "/v1.41/containers/\(name)/wait"
        let arguments = ["-sk", "--http1.1", "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "60"]
            + SigningKey().headers().flatMap { ["-H", "\($0.key): \($0.value)"] } + [url]
        let (waiting, result) = Self.inBackground { try? Command.run("curl", arguments, timeout: 70) }
        usleep(700_000)
        let stopped = Date()
        kill(agent.pid, SIGTERM)
        #expect(waiting.wait(timeout: .now() + 20) == .success)
        let (curl, ended) = result.get()
        // The engine sends /wait's head at once and its body when the container exits,
        // which it does not: the connection was closed mid-answer (curl fails).
        #expect(curl != nil && curl!.status != 0, "curl: \(curl.map { "\($0.status) \($0.output)" } ?? "nothing")")
        if let ended {
            let after = ended.timeIntervalSince(stopped)
            #expect(after > 9 && after < 14, "cut after \(after) s")
        }
        let exit = Self.exitTime(of: agent, since: stopped, within: 16)
        #expect(exit != nil && exit! > 9, "exit after \(exit.map { "\($0) s" } ?? "more than 16 s")")
        #expect(agent.logLines().contains { $0.contains("shutdown grace over") && $0.contains("connections=1") })
    }

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

private final class LockedResult: @unchecked Sendable {
    // Set once by the worker thread, read after it signalled its group.
    private var value: (CommandResult?, Date?) = (nil, nil)
    private let lock = NSLock()
    func set(_ result: CommandResult?, at date: Date) { lock.lock(); value = (result, date); lock.unlock() }
    func get() -> (CommandResult?, Date?) { lock.lock(); defer { lock.unlock() }; return value }
}

private final class LockedReply: @unchecked Sendable {
    // Set once by the request thread, read after it signalled the group.
    private var reply: HTTPReply?
    private var time: Date?
    private let lock = NSLock()
    func set(_ value: HTTPReply?) { lock.lock(); reply = value; time = Date(); lock.unlock() }
    func get() -> HTTPReply? { lock.lock(); defer { lock.unlock() }; return reply }
    /// When the request ended (answered or failed), or nil while it is in flight.
    var answeredAt: Date? { lock.lock(); defer { lock.unlock() }; return time }
}

/// Collects what a raw client connection receives.
private final class ReceivedBytes: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    // Appended on the channel's event loop, read by the test thread.
    private var bytes: [UInt8] = []
    private let lock = NSLock()
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: bytes, as: UTF8.self) }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lock.lock(); bytes += buffer.readableBytesView; lock.unlock()
    }
}
