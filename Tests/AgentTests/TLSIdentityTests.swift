import Foundation
import Testing
import TestCommands

/// `DECKHAND_TLS_CERT` and `DECKHAND_TLS_KEY`, with pairs made by openssl.
@Suite("The agent's own TLS certificate")
struct TLSIdentityTests {
    /// A folder with `name.pem` and `name.key` made by openssl for each of `names`.
    static func pairs(_ names: [String]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in names {
            let made = try Command.run("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(name)", "-days", "1",
                "-keyout", folder.appendingPathComponent("\(name).key").path, "-out", folder.appendingPathComponent("\(name).pem").path,
            ])
            guard made.status == 0 else { throw TestSetupError("openssl: \(made.errorOutput)") }
        }
        return folder
    }

    static func serve(certificate: String, key: String) throws -> CommandResult {
        try Command.run(try BuiltProducts.deckhand, ["serve"], environment: [
            "DECKHAND_TLS_CERT": certificate, "DECKHAND_TLS_KEY": key, "AGENT_PORT": String(try AgentProcess.freePort()),
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
        ], timeout: 20)
    }

    @Test("the agent serves the certificate it is given, as openssl sees it")
    func servesTheGivenCertificate() throws {
        let folder = try Self.pairs(["deckhand-given"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "DECKHAND_TLS_CERT": folder.appendingPathComponent("deckhand-given.pem").path,
            "DECKHAND_TLS_KEY": folder.appendingPathComponent("deckhand-given.key").path,
        ])
        defer { agent.stop() }
        let shown = try Command.run("sh", ["-c", "openssl s_client -connect 127.0.0.1:\(agent.port) </dev/null 2>/dev/null | openssl x509 -noout -subject"])
        #expect(shown.output.contains("CN = deckhand-given") || shown.output.contains("CN=deckhand-given"), "\(shown.output)")
    }

    /// Before, a FIFO blocked start-up for good with nothing logged.
    @Test("a certificate that is a FIFO, not a file, stops start-up at once, naming it")
    func fifoCertificate() throws {
        let folder = try Self.pairs(["real"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("fifo.pem").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let result = try Self.serve(certificate: fifo, key: folder.appendingPathComponent("real.key").path)
        #expect(result.status == 2, "exit \(result.status): \(result.errorOutput)")
        #expect(result.errorOutput.contains("fifo.pem") && result.errorOutput.contains("a regular file"), "\(result.errorOutput)")
    }

    /// Before, it surfaced only once the listener was made, as "cannot listen" (exit 1).
    @Test("a key that is not the certificate's stops start-up with exit 2, naming the key")
    func mismatchedKey() throws {
        let folder = try Self.pairs(["one", "other"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try Self.serve(certificate: folder.appendingPathComponent("one.pem").path, key: folder.appendingPathComponent("other.key").path)
        #expect(result.status == 2, "exit \(result.status): \(result.errorOutput)")
        #expect(result.errorOutput.contains("other.key") && result.errorOutput.contains("one.pem"), "\(result.errorOutput)")
    }

    /// DOCKER_CERT_PATH's files are read as the agent's own: before, a FIFO `ca.pem`
    /// blocked start-up for good (the engine address need not answer: the files are
    /// read first).
    @Test("an engine TLS file that is a FIFO stops start-up at once, naming it")
    func fifoEngineCA() throws {
        let folder = try Self.pairs(["cert"])
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.moveItem(at: folder.appendingPathComponent("cert.key"), to: folder.appendingPathComponent("key.pem"))
        #expect(mkfifo(folder.appendingPathComponent("ca.pem").path, 0o600) == 0)
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: [
            "DOCKER_HOST": "tcp://127.0.0.1:\(try AgentProcess.freePort())", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": folder.path,
            "AGENT_PORT": String(try AgentProcess.freePort()),
        ], timeout: 20)
        #expect(result.status == 2, "exit \(result.status): \(result.errorOutput)")
        #expect(result.errorOutput.contains("ca.pem") && result.errorOutput.contains("a regular file"), "\(result.errorOutput)")
    }
}
