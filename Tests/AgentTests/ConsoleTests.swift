import Foundation
import NIOCore
import Testing
import NIOWebSocket
import TestCommands

/// Portainer's container console: a websocket bridged to a hijacked exec or attach
/// on the real test engine.
@Suite("The console websockets")
struct ConsoleTests {
    static func engineJSON(_ method: String, _ path: String, body: String? = nil) throws -> [String: Any] {
        var extra = ["--unix-socket", try TestEngine.socket, "-H", "Content-Type: application/json"]
        if let body { extra += ["--data-binary", body] }
        let reply = try Curl.request(method, "http://localhost" + path, extra: extra)
        return (try? reply.json() as? [String: Any]) ?? [:]
    }

    static func container(_ arguments: [String]) throws -> String {
        let name = "dh-console-\(UInt32.random(in: 0...UInt32.max))"
        let run = try DockerCLITests.engine(["run", "-d", "--name", name] + arguments)
        guard run.status == 0 else { throw TestSetupError("docker run failed: \(run.errorOutput)") }
        return name
    }

    /// A container that sleeps and a TTY shell exec in it, created as Portainer's console
    /// page creates it (all three streams attached); the caller removes the container.
    /// It sleeps for an hour: an async test's body may wait minutes for a thread of the
    /// cooperative pool (two on a 2-core CI machine) after its first `await`, and the
    /// engine forgets an exec whose container has exited (a 404 to the console; the
    /// browser test failed so in CI at 488 s with `sleep 300`).
    static func shellExec() throws -> (container: String, exec: String) {
        let name = try container(["busybox:local", "sleep", "3600"])
        let exec = try engineJSON("POST", "/v1.41/containers/\(name)/exec",
                                  body: #"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#)
        guard let id = exec["Id"] as? String else {
            _ = try? DockerCLITests.engine(["rm", "-f", name])
            throw TestSetupError("the engine created no exec: \(exec)")
        }
        return (name, id)
    }

    @Test("exec: type a command, read its output, and get a close frame when the shell exits")
    func exec() async throws {
        let (name, id) = try Self.shellExec()
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            for path in ["/websocket/exec?id=\(id)", ] {
                let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: path, headers: key.headers())
                #expect(status == 101)
                let console = try #require(client)
                defer { console.close() }
                // Resizing is the ordinary proxied engine call.
                let resized = try agent.request("POST", "/v1.41/exec/\(id)/resize?h=40&w=120", key: key)
                #expect(resized.status == 200 || resized.status == 201, "\(resized.text)")
                // The TTY echoes what is typed; only the shell's output joins the quotes.
                try console.send("echo hel\"\"lo; exit\n")
                let result = console.wait { text, closed in closed }
                #expect(result.text.contains("hello"))
                #expect(result.closed)
            }
        }
    }

    @Test("attach: what is sent to a container running cat comes back")
    func attach() async throws {
        let name = try Self.container(["-i", "busybox:local", "cat"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        try await TestAgent.with { agent async throws in
            let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/v2/websocket/attach?id=\(name)", headers: SigningKey().headers())
            #expect(status == 101)
            let console = try #require(client)
            defer { console.close() }
            try console.send("round trip one\n")
            try console.send("round trip two\n", opcode: .text)
            let result = console.wait { text, _ in text.contains("round trip two") }
            #expect(result.text.contains("round trip one"))
            #expect(result.text.contains("round trip two"))
        }
    }

    /// What a decoder that browsers and Python share makes of `bytes` (invalid
    /// sequences as U+FFFD, one per maximal subpart): the independent truth.
    static func pythonDecoded(_ bytes: [UInt8]) throws -> [UInt8] {
        let script = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode('utf-8', 'replace').encode())"
        let result = try Command.run("python3", ["-c", script], input: Data(bytes))
        guard result.status == 0 else { throw TestSetupError("python3 failed: \(result.errorOutput)") }
        return Array(result.stdout)
    }

    /// Multi-byte characters of each length, then bytes that are not UTF-8 (a lone
    /// 0xFF, a lead without its continuation, a surrogate, a cut four-byte character).
    static let mixedOutput: [UInt8] = Array("h\u{E9}llo \u{20AC} \u{1F600} \u{4E16}".utf8) + [0xFF, 0x20, 0xC3, 0x28, 0xED, 0xA0, 0x80, 0x20, 0xF0, 0x9F, 0x98]

    @Test("console output is text frames of valid UTF-8: characters cut at every read boundary arrive whole, invalid bytes as U+FFFD")
    func textFrames() async throws {
        let name = try Self.container(["busybox:local", "sleep", "3600"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        // Each repetition is written in two parts with a pause between, cut at a different
        // byte: the engine reads (and the agent gets) a character in two pieces.
        let octal = { (bytes: ArraySlice<UInt8>) in bytes.map { "\\" + String($0, radix: 8) }.joined() }
        let output = Self.mixedOutput
        let script = (0...output.count).map { cut in
            "printf '\(octal(output[..<cut]))'; sleep 0.05; printf '\(octal(output[cut...]))'; sleep 0.05"
        }.joined(separator: "; ")
        let body = try JSONSerialization.data(withJSONObject: [
            "Cmd": ["sh", "-c", script], "Tty": true, "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
        ])
        let exec = try Self.engineJSON("POST", "/v1.41/containers/\(name)/exec", body: String(decoding: body, as: UTF8.self))
        let id = try #require(exec["Id"] as? String)
        let expected = try Self.pythonDecoded(Array(repeating: output, count: output.count + 1).flatMap { $0 })
        let frames = try await Self.framesUntilEnd(ofExec: id, timeout: 30)
        #expect(!frames.isEmpty)
        #expect(frames.allSatisfy { $0.opcode == .text }, "opcodes: \(frames.map { "\($0.opcode)" })")
        #expect(frames.allSatisfy { String(validating: $0.payload, as: UTF8.self) != nil }, "a text frame is not valid UTF-8")
        #expect(frames.flatMap(\.payload) == expected, "got \(String(decoding: frames.flatMap(\.payload), as: UTF8.self).debugDescription)")
    }

    /// The data frames a console on exec `id` sends until the exec ends (which it must
    /// within `timeout` seconds), through a fresh agent.
    static func framesUntilEnd(ofExec id: String, timeout: Double) async throws -> [(opcode: WebSocketOpcode, payload: [UInt8])] {
        try await TestAgent.with { agent async throws in
            let (status, client) = try WebSocketClient.connect(
                host: "127.0.0.1", port: agent.port, path: "/websocket/exec?id=\(id)", headers: SigningKey().headers())
            #expect(status == 101)
            let console = try #require(client)
            defer { console.close() }
            let result = console.wait(timeout: timeout) { _, closed in closed }
            #expect(result.closed)
            return console.dataFrames
        }
    }

    @Test("cat /bin/busybox through the console: only text frames, the binary's bytes as a browser decodes them")
    func binaryOutput() async throws {
        let name = try Self.container(["busybox:local", "sleep", "3600"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        // The bytes themselves, straight from the engine (not through the agent).
        let binary = try DockerCLITests.engine(["exec", name, "cat", "/bin/busybox"])
        try #require(binary.status == 0 && binary.stdout.count > 100_000, "\(binary.errorOutput)")
        let expected = try Self.pythonDecoded(Array(binary.stdout))
        // A raw terminal: no \n → \r\n on the way out, so the bytes are the file's.
        let body = try JSONSerialization.data(withJSONObject: [
            "Cmd": ["sh", "-c", "stty raw -echo; cat /bin/busybox"], "Tty": true, "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
        ])
        let exec = try Self.engineJSON("POST", "/v1.41/containers/\(name)/exec", body: String(decoding: body, as: UTF8.self))
        let id = try #require(exec["Id"] as? String)
        let frames = try await Self.framesUntilEnd(ofExec: id, timeout: 60)
        #expect(frames.allSatisfy { $0.opcode == .text }, "a frame that is not text")
        #expect(frames.allSatisfy { String(validating: $0.payload, as: UTF8.self) != nil }, "a text frame is not valid UTF-8")
        let received = frames.flatMap(\.payload)
        #expect(received.count == expected.count && received == expected,
                "\(received.count) bytes of text, python decodes the file to \(expected.count)")
    }

    @Test("ids are checked before any upgrade: 400 when malformed, 404 when unknown")
    func badIds() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            for (path, expected) in [
                ("/websocket/exec?id=not-hex!", 400),
                ("/websocket/exec", 400),
                ("/websocket/attach?id=..%2Fetc", 400),
                ("/websocket/exec?id=" + String(repeating: "0", count: 64), 404),
                ("/websocket/attach?id=dh-no-such-container", 404),
            ] {
                let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: path, headers: key.headers())
                #expect(status == expected, "\(path)")
                #expect(client == nil)
            }
            // Not a websocket request at all.
            let plain = try agent.request("GET", "/websocket/attach?id=abc", key: key)
            #expect(plain.status == 400)
            // Unsigned: refused before anything else.
            let (unsigned, _) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/attach?id=abc", headers: [:])
            #expect(unsigned == 403)
        }
    }

    @Test("a browser that sends pings and never reads costs bounded memory: the agent stops reading it")
    func pingsWithoutReading() throws {
        let name = try Self.container(["-i", "busybox:local", "cat"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/attach?id=\(name)", headers: SigningKey().headers())
        #expect(status == 101)
        let console = try #require(client)
        defer { console.close() }
        try console.channel.setOption(.autoRead, value: false).wait()
        usleep(300_000)
        let before = try agent.memory().current
        // 512,000 pings of 125 bytes: 64 MiB of pongs if every one were answered at once.
        let payload = String(repeating: "p", count: 125)
        // In batches, each its own task: one task of 512,000 writes held a loop that the
        // whole test process shares for seconds, and other tests' connects timed out.
        for _ in 0..<512 {
            try console.channel.eventLoop.submit {
                for _ in 0..<1000 {
                    let ping = WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: console.channel.allocator.buffer(string: payload))
                    console.channel.write(ping, promise: nil)
                }
                console.channel.flush()
            }.wait()
        }
        usleep(5_000_000)
        let after = try agent.memory().current
        #expect(after - before < 16 * 1024, "RSS \(before) KiB with the console open, \(after) KiB once 512,000 pings were sent and no pong read")
    }

    @Test("2,000 consoles opened and closed leave the agent's descriptors where they were")
    func noLeaks() throws {
        let name = try Self.container(["-i", "busybox:local", "cat"])
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        func session() throws {
            let (status, client) = try WebSocketClient.connect(host: "127.0.0.1", port: agent.port, path: "/websocket/attach?id=\(name)", headers: key.headers())
            #expect(status == 101)
            client?.close()
        }
        try session()
        usleep(300_000)
        let before = agent.openDescriptorCount()
        for _ in 0..<2000 { try session() }
        var after = agent.openDescriptorCount()
        for _ in 0..<50 where after > before + 4 {
            usleep(100_000)
            after = agent.openDescriptorCount()
        }
        #expect(after <= before + 4, "descriptors: \(before) before, \(after) after 2,000 consoles")
    }
}
