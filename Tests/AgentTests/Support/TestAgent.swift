import ASCIIText
import Crypto
import Foundation
import Logging
import Proxy
@testable import Agent
import TestCommands

/// A Portainer-style signing client: a P-256 key and the two headers it sends.
struct SigningKey {
    let privateKey = P256.Signing.PrivateKey()

    var publicKeyHex: String { HexEncoding.encode(privateKey.publicKey.derRepresentation) }

    /// Headers signing `secret`, or Portainer's default message.
    func headers(secret: String? = nil) -> [String: String] {
        Dictionary(uniqueKeysWithValues: PortainerSignature.headers(signingWith: privateKey, secret: secret))
    }
}

/// What curl saw for one request.
struct HTTPReply {
    var status: Int
    /// Header names lower-cased; the last value wins.
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> Any { try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
}

/// A Deckhand server started in-process on a free port, against the test engine
/// (or any socket path, to test an unreachable engine).
final class TestAgent: Sendable {
    let server: AgentServer
    let port: Int

    private init(server: AgentServer) {
        self.server = server
        self.port = server.port
    }

    /// `engineSocket` is any engine address (`/path`, `unix://…`, `tcp://…`), with
    /// `engineTLS` for a TLS port.
    static func start(
        secret: String? = nil, engineSocket: String? = nil, engineTLS: EngineTLS? = nil, hostManagement: Bool = false, hostRoot: String? = nil
    ) async throws -> TestAgent {
        let volumesRoot = try TestVolume.volumesRoot
        var configuration = AgentConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.secret = secret
        configuration.hostManagement = hostManagement
        if let hostRoot { configuration.hostRoot = hostRoot }
        configuration.volumesRoot = volumesRoot
        let address = try engineSocket ?? TestEngine.socket
        guard let engine = EngineAddress(address) else { throw TestSetupError("not an engine address: \(address)") }
        configuration.engine = engine
        configuration.engineTLS = engineTLS
        var logger = Logger(label: "deckhand-test")
        logger.logLevel = .error
        let server = try await AgentServer.start(configuration: configuration, identity: try TLSIdentity.selfSigned(), logger: logger)
        return TestAgent(server: server)
    }

    /// Runs `body` with a fresh agent and stops it afterwards, whatever happens.
    static func with<T>(
        secret: String? = nil,
        engineSocket: String? = nil,
        engineTLS: EngineTLS? = nil,
        hostManagement: Bool = false,
        hostRoot: String? = nil,
        _ body: (TestAgent) async throws -> T
    ) async throws -> T {
        let agent = try await start(secret: secret, engineSocket: engineSocket, engineTLS: engineTLS, hostManagement: hostManagement, hostRoot: hostRoot)
        do {
            let result = try await body(agent)
            await agent.stop()
            return result
        } catch {
            await agent.stop()
            throw error
        }
    }

    func stop() async {
        await server.stop()
    }

    var baseURL: String { "https://127.0.0.1:\(port)" }

    /// One request through curl (a real HTTPS client), signed with `key` when given.
    func request(
        _ method: String = "GET",
        _ path: String,
        key: SigningKey? = nil,
        secret: String? = nil,
        headers: [String: String] = [:],
        body: Data? = nil
    ) throws -> HTTPReply {
        try Curl.request(method, baseURL + path, headers: (key?.headers(secret: secret) ?? [:]).merging(headers) { $1 }, body: body)
    }
}

enum Curl {
    /// curl's exit status for a GET that should get no answer at all, so that a test
    /// can tell how it failed: 7 is a refused connection, 35 a connection closed during
    /// the TLS handshake, 28 a time-out (an answer that never came is not a refusal).
    static func exitStatus(_ url: String, maxTime: Int = 3) throws -> Int32 {
        try Command.run("curl", ["-sk", "--http1.1", "-o", "/dev/null", "--max-time", String(maxTime), url]).status
    }

    static func request(
        _ method: String,
        _ url: String,
        headers: [String: String] = [:],
        body: Data? = nil,
        extra: [String] = []
    ) throws -> HTTPReply {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var arguments = ["-sk", "--http1.1", "-X", method, "-D", dir.appendingPathComponent("h").path,
                         "-o", dir.appendingPathComponent("b").path, "-w", "%{http_code}", "--max-time", "30"]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let body {
            try body.write(to: dir.appendingPathComponent("in"))
            arguments += ["--data-binary", "@" + dir.appendingPathComponent("in").path]
        }
        arguments += extra + [url]
        // curl's own limit (the last --max-time given wins) bounds the run, not the runner's default.
        let maxTime = arguments.indices.last { arguments[$0] == "--max-time" }.flatMap { TimeInterval(arguments[$0 + 1]) } ?? 30
        let result = try Command.run("curl", arguments, timeout: maxTime + 10)
        guard result.status == 0, let status = Int(result.output) else {
            throw TestSetupError("curl \(method) \(url) failed (\(result.status)): \(result.errorOutput)")
        }
        let rawHeaders = (try? String(contentsOf: dir.appendingPathComponent("h"), encoding: .utf8)) ?? ""
        // With 1xx interim responses there are several blocks: keep the final one.
        let block = rawHeaders.components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }.last ?? ""
        var parsed: [String: String] = [:]
        for line in block.components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let data = (try? Data(contentsOf: dir.appendingPathComponent("b"))) ?? Data()
        return HTTPReply(status: status, headers: parsed, body: data)
    }
}
