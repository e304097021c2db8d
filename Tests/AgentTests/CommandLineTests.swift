import Foundation
import Testing
@testable import Agent
import TestCommands

/// The `deckhand` executable itself, as an operator runs it.
@Suite("The deckhand command line")
struct CommandLineTests {
    @Test("an invalid setting stops start-up with one line naming the variable", arguments: [
        ("AGENT_PORT", "ninety", "AGENT_PORT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("CAP_HOST_MANAGEMENT", "yes", "CAP_HOST_MANAGEMENT"),
        ("LOG_MODE", "xml", "LOG_MODE"),
        ("DECKHAND_ENGINE_SOCKET", "relative/docker.sock", "DECKHAND_ENGINE_SOCKET"),
        ("DECKHAND_NODE_NAME", "node 1", "DECKHAND_NODE_NAME"),
        ("DECKHAND_NODE_NAME", "node1,node2", "DECKHAND_NODE_NAME"),
        ("DECKHAND_ALLOWED_CLIENTS", "10.0.0.1/8", "DECKHAND_ALLOWED_CLIENTS"),
        ("DECKHAND_ALLOWED_CLIENTS", "192.168.1.10,portainer.example", "DECKHAND_ALLOWED_CLIENTS"),
    ])
    func invalidSetting(variable: String, value: String, named: String) throws {
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: [variable: value], timeout: 20)
        #expect(result.status == 2)
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains(named) == true)
        #expect(lines.first?.contains(value) == true)
    }

    @Test("a flag wins over its environment variable, and is validated the same way")
    func flagsOverEnvironment() throws {
        let configuration = try AgentConfiguration.resolve(
            flags: [.port: "9100"], environment: ["AGENT_PORT": "9200", "AGENT_HOST": "127.0.0.1", "CAP_HOST_MANAGEMENT": "1", "LOG_MODE": "JSON"])
        #expect(configuration.port == 9100)
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.hostManagement)
        #expect(configuration.logFormat == .json)
        #expect(throws: ConfigurationError.self) {
            try AgentConfiguration.resolve(flags: [.port: "70000"], environment: [:])
        }
        #expect(throws: ConfigurationError.self) {
            try AgentConfiguration.resolve(flags: [.tlsCertificate: "/tmp/cert.pem"], environment: [:])
        }
        #expect(try AgentConfiguration.resolve(flags: [:], environment: [:]).nodeName == nil)
        #expect(try AgentConfiguration.resolve(flags: [.nodeName: "node1-b"], environment: ["DECKHAND_NODE_NAME": "other"]).nodeName == "node1-b")
        for invalid in ["", "-node", "node/1", "nöde", String(repeating: "n", count: 254)] {
            #expect(throws: ConfigurationError.self, "\(invalid)") {
                try AgentConfiguration.resolve(flags: [.nodeName: invalid], environment: [:])
            }
        }
    }

    @Test("--help documents every setting with its environment variable")
    func help() throws {
        let result = try Command.run(try BuiltProducts.deckhand, ["serve", "--help"], timeout: 20)
        #expect(result.status == 0)
        for setting in Setting.allCases {
            #expect(result.output.contains("--\(setting.flag)"), "missing --\(setting.flag)")
            #expect(result.output.contains(setting.environmentName), "missing \(setting.environmentName)")
        }
        #expect(try Command.run(try BuiltProducts.deckhand, ["version"]).output.hasPrefix("deckhand \(AgentVersion.deckhand)"))
    }

    @Test("keygen and sign make headers the agent accepts, in every output format")
    func keygenAndSign() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let keyPath = dir.appendingPathComponent("key.pem").path
        #expect(try Command.run(try BuiltProducts.deckhand, ["keygen", "--out", keyPath]).status == 0)
        let mode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // keygen never overwrites a key.
        #expect(try Command.run(try BuiltProducts.deckhand, ["keygen", "--out", keyPath]).status != 0)

        let config = try Command.run(try BuiltProducts.deckhand, ["sign", "--key", keyPath, "--format", "docker-config"])
        let headers = try #require((try JSONSerialization.jsonObject(with: config.stdout) as? [String: [String: String]])?["HttpHeaders"])
        try await TestAgent.with { agent async throws in
            #expect(try agent.request("GET", "/_ping", headers: headers).status == 200)
        }
        let secretLines = try Command.run(try BuiltProducts.deckhand, ["sign", "--key", keyPath, "--secret", "abc"]).output
        var secretHeaders: [String: String] = [:]
        for line in secretLines.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            secretHeaders[parts[0]] = parts[1]
        }
        try await TestAgent.with(secret: "abc") { agent async throws in
            #expect(try agent.request("GET", "/_ping", headers: secretHeaders).status == 200)
        }
    }

    @Test("what an agent answers cannot drive the operator's terminal: deckhand status and host-info print escape and control bytes inertly")
    func remoteTextIsInert() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("inert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("client.pem").path
        #expect(try Command.run(try BuiltProducts.deckhand, ["keygen", "--out", key]).status == 0)
        // Whoever answers at the address (trust on first use checks nothing first), one answer each.
        func answer(_ body: String, status: String = "200 OK", _ arguments: [String]) throws -> CommandResult {
            let (liar, port, liarFolder) = try MemberLineStreamTests.liar(body, thenEnd: true, status: status)
            defer { liar.stop(); try? FileManager.default.removeItem(at: liarFolder) }
            return try Command.run(try BuiltProducts.deckhand, arguments + ["--address", "127.0.0.1:\(port)", "--key", key], timeout: 40)
        }
        let hostile = "\u{1B}]52;c;ZXZpbA==\u{07}\u{1B}[2J\u{9B}31m\u{7F}"
        // Controls, and format characters (bidi overrides, zero widths) that reorder or hide what a line shows.
        func inert(_ result: CommandResult) -> Bool {
            !result.output.unicodeScalars.contains {
                $0.value < 0x20 && $0 != "\n" && $0 != "\t" || (0x7F...0x9F).contains($0.value) || $0.properties.generalCategory == .format
            }
        }
        // A refusal whose body is escape sequences.
        let refused = try answer(hostile, status: "500 Internal Server Error", ["status"])
        #expect(refused.status == 1)
        #expect(inert(refused), "\(refused.output.debugDescription)")
        #expect(refused.output.contains("\\u{1B}]52;c;"), "\(refused.output.debugDescription)")
        // A status whose node name carries them (escaped in the JSON, raw once decoded).
        let status = #"{"NodeName":"\u001b[2Jnode\u009b","Version":"x","Engine":{"Answers":true}}"#
        let table = try answer(status, ["status"])
        #expect(inert(table), "\(table.output.debugDescription)")
        #expect(table.output.contains("node"), "\(table.output.debugDescription)")
        // JSON as it came, printed inertly, and the same JSON, as Python reads it: raw C1
        // bytes; a carriage return (JSON whitespace) that would let the rest overwrite
        // the line; U+202E (right-to-left override) and a tag character in a string.
        for raw in [
            "{\"NodeName\":\"a\u{9B}b\u{7F}\",\"Version\":\"x\"}",
            "{\"Engine\":{\"Answers\":false},\r" + String(repeating: " ", count: 40) + "\"NodeName\":\"\u{202E}evil\u{E0001}\",\"Version\":\"x\"}",
        ] {
            let json = try answer(raw, ["status", "--json"])
            #expect(json.status == 0)
            #expect(inert(json), "\(json.output.debugDescription)")
            let same = try Command.run("python3", ["-c", "import json, sys; a, b = sys.argv[1], sys.stdin.read(); sys.exit(0 if json.loads(a) == json.loads(b) else 1)", raw],
                                       input: Data(json.output.utf8))
            #expect(same.status == 0, "\(json.output.debugDescription)")
        }
        let reordered = try answer(#"{"NodeName":"\u202enode","Version":"x","Engine":{"Answers":true}}"#, ["status"])
        #expect(inert(reordered) && reordered.output.contains("node"), "\(reordered.output.debugDescription)")
        // Not JSON at all: said so, not printed.
        let notJSON = try answer(hostile, ["host-info"])
        #expect(notJSON.status == 1)
        #expect(inert(notJSON) && notJSON.output.contains("not JSON"), "\(notJSON.output.debugDescription)")
    }
}
