import Foundation
import Testing
@testable import Agent
import TestCommands

@Suite("The Docker Engine API through the agent, against a real dockerd")
struct EngineProxyTests {
    /// The same request straight to the engine's socket.
    static func direct(_ method: String, _ path: String) throws -> HTTPReply {
        try Curl.request(method, "http://localhost" + path, extra: ["--unix-socket", try TestEngine.socket])
    }

    @Test("a versioned path returns what the engine itself returns", arguments: ["/v1.41/version", "/version", "/v1.41/info", "/v1.41/images/json"])
    func versionedPathMatchesEngine(path: String) async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            let viaAgent = try agent.request("GET", path, key: key)
            let direct = try Self.direct("GET", path)
            #expect(viaAgent.status == direct.status)
            #expect(viaAgent.headers["api-version"] == direct.headers["api-version"])
            #expect(viaAgent.headers["content-type"] == direct.headers["content-type"])
            #expect(viaAgent.headers["portainer-agent"] == AgentVersion.deckhand)
            if path.hasSuffix("version") {
                #expect(viaAgent.body == direct.body)
            } else if path.hasSuffix("images/json") {
                // DockerCLITests tag and remove images on this engine in parallel, which
                // changes the tags between the two reads but never the set of image IDs.
                let ids = { (reply: HTTPReply) throws -> [String] in
                    try #require(try reply.json() as? [[String: Any]]).compactMap { $0["Id"] as? String }.sorted()
                }
                #expect(try ids(viaAgent) == ids(direct))
                #expect(try !ids(direct).isEmpty)
            } else {
                // /info carries a clock and counters; compare what does not move.
                let a = try #require(try viaAgent.json() as? [String: Any])
                let b = try #require(try direct.json() as? [String: Any])
                #expect(a["ID"] as? String == b["ID"] as? String)
                #expect(a["Name"] as? String == b["Name"] as? String)
            }
        }
    }

    @Test("the client's API version is kept, not replaced by the engine's newest")
    func clientVersionIsKept() async throws {
        try await TestAgent.with { agent async throws in
            // An engine answers 400 to a version newer than it knows; stripping the
            // prefix (as the original agent does) would turn this into a 200.
            let viaAgent = try agent.request("GET", "/v1.99/version", key: SigningKey())
            let direct = try Self.direct("GET", "/v1.99/version")
            #expect(direct.status == 400)
            #expect(viaAgent.status == 400)
            #expect(viaAgent.body == direct.body)
        }
    }

    @Test("request bodies stream through: a container created and removed by JSON body")
    func requestBodyIsForwarded() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            let name = "dh-body-\(UInt32.random(in: 0...UInt32.max))"
            let created = try agent.request(
                "POST", "/v1.41/containers/create?name=\(name)", key: key,
                headers: ["Content-Type": "application/json"],
                body: Data(#"{"Image":"busybox:local","Cmd":["true"],"Labels":{"deckhand.test":"yes"}}"#.utf8))
            #expect(created.status == 201)
            let inspect = try Self.direct("GET", "/v1.41/containers/\(name)/json")
            let labels = ((try inspect.json() as? [String: Any])?["Config"] as? [String: Any])?["Labels"] as? [String: String]
            #expect(labels?["deckhand.test"] == "yes")
            #expect(try agent.request("DELETE", "/v1.41/containers/\(name)", key: key).status == 204)
        }
    }

    @Test("an unreachable engine gives a 502 JSON error and the agent keeps serving")
    func unreachableEngine() async throws {
        try await TestAgent.with(engineSocket: "/nonexistent/docker.sock") { agent async throws in
            let key = SigningKey()
            for _ in 0..<3 {
                let reply = try agent.request("GET", "/v1.41/containers/json", key: key)
                #expect(reply.status == 502)
                let body = try #require(try reply.json() as? [String: String])
                #expect(body["message"] == "Unable to reach the Docker engine")
                #expect(body["details"]?.contains("/nonexistent/docker.sock") == true)
            }
            #expect(try agent.request("GET", "/ping").status == 204)
        }
    }

    @Test("agent routes refuse the wrong method with 405 and JSON")
    func wrongMethod() async throws {
        try await TestAgent.with { agent async throws in
            let reply = try agent.request("POST", "/agents", key: SigningKey())
            #expect(reply.status == 405)
            #expect(reply.headers["allow"] == "GET")
            #expect((try reply.json() as? [String: String])?["message"] != nil)
        }
    }

    @Test("/agents on a standalone engine answers 503 as the original does")
    func agentsOnStandalone() async throws {
        try await TestAgent.with { agent async throws in
            let reply = try agent.request("GET", "/v2/agents", key: SigningKey())
            #expect(reply.status == 503)
            #expect((try reply.json() as? [String: String])?["message"] == "Agent management is not available when running the agent on a standalone engine")
        }
    }

    @Test("requests pipelined on one connection are all answered, in order")
    func pipelinedRequests() async throws {
        try await TestAgent.with { agent async throws in
            let signature = SigningKey().headers().map { "\($0.key): \($0.value)\r\n" }.joined()
            // Engine, agent, agent, engine: sent at once, before any answer arrives.
            let requests = "GET /_ping HTTP/1.1\r\nHost: x\r\n\(signature)\r\n"
                + String(repeating: "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", count: 2)
                + "GET /v1.41/version HTTP/1.1\r\nHost: x\r\n\(signature)Connection: close\r\n\r\n"
            // -quiet keeps reading after stdin ends, until the agent closes after the last answer.
            let result = try Command.run(
                "openssl", ["s_client", "-quiet", "-connect", "127.0.0.1:\(agent.port)"], input: Data(requests.utf8), timeout: 20)
            // The answers follow each other directly ("OK" is right before the next status line).
            let statuses = result.output.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(statuses == ["200", "204", "204", "200"])
            #expect(result.output.contains("\r\n\r\nOKHTTP/1.1 204"))
            #expect(result.output.contains("\"ApiVersion\""))
        }
    }

    /// `requests`, raw, sent at once on one TLS connection; what came back until the
    /// agent closed it (the last request should say `Connection: close`).
    static func onOneConnection(_ requests: String, to agent: TestAgent) throws -> String {
        // -quiet keeps reading after stdin ends, until the agent closes.
        let result = try Command.run(
            "openssl", ["s_client", "-quiet", "-connect", "127.0.0.1:\(agent.port)"], input: Data(requests.utf8), timeout: 20)
        return String(decoding: result.stdout, as: UTF8.self)
    }

    @Test("an answer that ends with the engine's connection (attach without upgrade) is chunked to an HTTP/1.1 client, whose connection goes on, and said to end with the connection to HTTP/1.0")
    func answerEndingWithTheEngineConnection() async throws {
        let name = DockerCLITests.uniqueName("until-close")
        #expect(try DockerCLITests.engine(["run", "--name", name, "busybox:local", "sh", "-c", "echo hi; echo bye"]).status == 0)
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let attach = "/v1.41/containers/\(name)/attach?stream=0&stdout=1&logs=1"
        // The engine's own answer has neither a length nor chunks: it ends when the engine closes.
        let direct = try Self.direct("POST", attach)
        #expect(direct.status == 200)
        #expect(direct.headers["content-length"] == nil && direct.headers["transfer-encoding"] == nil)
        let stream = "\u{1}\0\0\0\0\0\0\u{3}hi\n\u{1}\0\0\0\0\0\0\u{4}bye\n"
        #expect(direct.text == stream)
        try await TestAgent.with { agent async throws in
            let signature = SigningKey().headers().map { "\($0.key): \($0.value)\r\n" }.joined()
            let http11 = try Self.onOneConnection(
                "POST \(attach) HTTP/1.1\r\nHost: x\r\n\(signature)\r\n"
                    + "GET /_ping HTTP/1.1\r\nHost: x\r\n\(signature)Connection: close\r\n\r\n",
                to: agent)
            let answers = http11.components(separatedBy: "HTTP/1.1 ").dropFirst()
            #expect(answers.map { $0.prefix(3) } == ["200", "200"], "\(http11)")
            let first = try #require(answers.first).lowercased()
            #expect(first.contains("transfer-encoding: chunked\r\n"), "\(first)")
            #expect(!first.contains("connection: close"), "\(first)")
            // The chunks carry the engine's bytes, and the last chunk ends the answer.
            let afterHead = try #require(http11.range(of: "\r\n\r\n")).upperBound
            let dechunked = try #require(Self.dechunked(Array(http11[afterHead...].utf8)), "\(http11)")
            #expect(String(decoding: dechunked.body, as: UTF8.self) == stream)
            #expect(String(decoding: dechunked.rest, as: UTF8.self).hasPrefix("HTTP/1.1 200"), "\(http11)")
            #expect(http11.hasSuffix("\r\n\r\nOK"))

            let http10 = try Self.onOneConnection("POST \(attach) HTTP/1.0\r\nHost: x\r\n\(signature)\r\n", to: agent)
            #expect(http10.lowercased().contains("\r\nconnection: close\r\n"), "\(http10)")
            #expect(!http10.lowercased().contains("transfer-encoding"), "\(http10)")
            #expect(http10.hasSuffix("\r\n\r\n" + stream), "\(http10)")
        }
    }

    /// A chunked body's content and the bytes after its last chunk, or nil if it is not chunked.
    static func dechunked(_ bytes: [UInt8]) -> (body: [UInt8], rest: ArraySlice<UInt8>)? {
        var rest = bytes[...]
        var body: [UInt8] = []
        let crlf: [UInt8] = [13, 10]
        while let lineEnd = rest.firstRange(of: crlf),
              let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) {
            let start = lineEnd.upperBound
            guard start + size + 2 <= rest.endIndex, rest[(start + size)...].starts(with: crlf) else { return nil }
            body += rest[start..<(start + size)]
            rest = rest[(start + size + 2)...]
            if size == 0 { return (body, rest) }
        }
        return nil
    }
}
