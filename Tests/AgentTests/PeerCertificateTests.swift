import ASCIIText
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
import TestCommands
@testable import Proxy

/// Secret mode authenticates the TLS channel between agents (`PeerCertificate`): what
/// an agent serves a peer is read here by OpenSSL, and its MAC computed by OpenSSL and
/// Python from the secret; the check a peer makes is tried on the real agent and on an
/// impostor (Python's TLS server) whose certificate copies the real one's names onto
/// its own key.
@Suite("The peer certificate of secret mode")
struct PeerCertificateTests {
    static let secret = "peer-certificate-tests-secret"

    /// An agent in secret mode, its cluster address naming itself (or standalone).
    static func agent(secret: String = secret, standalone: Bool = false) throws -> AgentProcess {
        let port = try AgentProcess.freePort()
        var environment = ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET": secret]
        if !standalone { environment["AGENT_CLUSTER_ADDR"] = "127.0.0.1:\(port)" }
        return try AgentProcess(port: port, environment: environment)
    }

    /// Python's TLS server with an openssl-made certificate for its own key that copies
    /// `names`: it answers any request `204` and writes down every byte it reads.
    final class Impostor {
        let port: Int
        private let server: ChildProcess
        private let folder: URL
        var read: Data { (try? Data(contentsOf: folder.appendingPathComponent("read"))) ?? Data() }

        init(names: [String]) throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("impostor-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let (key, certificate) = (folder.appendingPathComponent("key.pem").path, folder.appendingPathComponent("cert.pem").path)
            let made = try Command.run("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", certificate,
                "-subj", "/CN=deckhand peer", "-days", "1", "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ","),
            ])
            guard made.status == 0 else { throw TestSetupError("openssl req: \(made.errorOutput)") }
            port = try AgentProcess.freePort()
            server = try Command.spawn("python3", ["-c", """
                import socket, ssl, sys
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(sys.argv[1], sys.argv[2])
                listener = socket.create_server(("127.0.0.1", int(sys.argv[3])))
                out = open(sys.argv[4], "ab", buffering=0)
                while True:
                    connection, _ = listener.accept()
                    try:
                        with context.wrap_socket(connection, server_side=True) as tls:
                            out.write(tls.recv(65536))
                            tls.sendall(b"HTTP/1.1 204 No Content\\r\\n\\r\\n")
                    except (ssl.SSLError, OSError):
                        pass
                """, certificate, key, String(port), folder.appendingPathComponent("read").path])
            for _ in 0..<100 {
                let probe = try Command.run("openssl", ["s_client", "-connect", "127.0.0.1:\(port)"], input: Data(), timeout: 5)
                if probe.output.contains("BEGIN CERTIFICATE") { return }
                usleep(50_000)
            }
            stop()
            throw TestSetupError("the impostor did not start")
        }

        func stop() {
            server.stop()
            try? FileManager.default.removeItem(at: folder)
        }

        deinit { stop() }
    }

    /// The certificate `openssl s_client` is served at `port`, asking for `serverName`, PEM.
    static func servedCertificate(port: Int, serverName: String?) throws -> String {
        let result = try Command.run("openssl", ["s_client", "-connect", "127.0.0.1:\(port)"] + (serverName.map { ["-servername", $0] } ?? ["-noservername"]),
                                     input: Data(), timeout: 20)
        let text = result.output
        guard let start = text.range(of: "-----BEGIN CERTIFICATE-----"), let end = text.range(of: "-----END CERTIFICATE-----") else {
            throw TestSetupError("no certificate from s_client: \(result.errorOutput)")
        }
        return String(text[start.lowerBound..<end.upperBound]) + "\n"
    }

    /// The DNS names of a PEM certificate's subjectAltName, as OpenSSL prints them.
    static func dnsNames(_ pem: String) throws -> [String] {
        let result = try Command.run("openssl", ["x509", "-noout", "-ext", "subjectAltName"], input: Data(pem.utf8))
        #expect(result.status == 0, "\(result.errorOutput)")
        return result.output.components(separatedBy: CharacterSet(charactersIn: ", \n")).filter { $0.hasPrefix("DNS:") }.map { String($0.dropFirst(4)) }
    }

    /// The name a certificate for `pem`'s key must carry under `secret`: OpenSSL hashes
    /// the key's SubjectPublicKeyInfo and computes the MAC under the scrypt key (its own
    /// scrypt's), Python writes it in base 32.
    static func expectedName(_ pem: String, secret: String) throws -> String {
        let script = """
        import base64, subprocess, sys
        pem = sys.stdin.buffer.read()
        spki = subprocess.run(["sh", "-c", "openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER"], input=pem, capture_output=True, check=True).stdout
        digest = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=spki, capture_output=True, check=True).stdout.split()[0].decode()
        key = sys.argv[1]
        mac = subprocess.run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:" + key, "-r"],
                             input=("deckhand certificate v2\\n" + digest).encode(), capture_output=True, check=True).stdout.split()[0].decode()
        print(base64.b32encode(bytes.fromhex(mac)).decode().lower().rstrip("=") + ".deckhand-peer.invalid")
        """
        let result = try Command.run("python3", ["-c", script, try PeerKeyTests.opensslCertificateKey(secret)], input: Data(pem.utf8))
        #expect(result.status == 0, "\(result.errorOutput)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `GET /ping` through a peer connection that checks the certificate under `secret`.
    static func ping(port: Int, secret: String) throws -> Result<UInt, Error> {
        let context = try UpstreamTransport.peerTLSContext(proven: true)
        let pool = UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: context, vouchedBy: PeerKey(secret: secret)))
        defer { pool.closeIdle() }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ping", headers: ["Host": "127.0.0.1"])
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return Result { try pool.collect(head, on: loop, limit: 4096, timeout: .seconds(5)).wait().head.status.code }
    }

    @Test("asked for deckhand-peer.invalid, an agent serves a certificate naming the MAC of its own key under the secret, as OpenSSL computes it; asked for nothing, its own")
    func servedAsOpenSSLReadsIt() throws {
        let agent = try Self.agent()
        defer { agent.stop() }
        let peer = try Self.servedCertificate(port: agent.port, serverName: PeerCertificate.serverName)
        let names = try Self.dnsNames(peer)
        #expect(names.first == PeerCertificate.serverName, "\(names)")
        #expect(names.dropFirst() == [try Self.expectedName(peer, secret: Self.secret)], "\(names)")

        let plain = try Self.servedCertificate(port: agent.port, serverName: nil)
        #expect(plain != peer)
        #expect(try Self.dnsNames(plain).allSatisfy { !$0.hasSuffix("deckhand-peer.invalid") })
        let other = try Self.servedCertificate(port: agent.port, serverName: "node1")
        #expect(try Self.dnsNames(other).allSatisfy { !$0.hasSuffix("deckhand-peer.invalid") })
    }

    @Test("a peer connection reaches an agent holding the secret; not one with another secret, and not an impostor whose certificate copies a real one's names")
    func peersAreChecked() throws {
        let agent = try Self.agent()
        defer { agent.stop() }
        #expect(try Self.ping(port: agent.port, secret: Self.secret).get() == 204)
        // A context that verifies nothing would skip the check: such a connection is refused outright.
        let unverifying = UpstreamPool(transport: .tls(
            host: "127.0.0.1", port: agent.port, context: try UpstreamTransport.peerTLSContext(), vouchedBy: PeerKey(secret: Self.secret)))
        let ping = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ping", headers: ["Host": "127.0.0.1"])
        #expect(throws: (any Error).self) { try unverifying.collect(ping, on: MultiThreadedEventLoopGroup.singleton.next(), limit: 4096, timeout: .seconds(5)).wait() }
        // An agent with another secret cannot vouch for its key under this one.
        let stranger = try Self.agent(secret: "another secret")
        defer { stranger.stop() }
        #expect(throws: (any Error).self) { try Self.ping(port: stranger.port, secret: Self.secret).get() }

        // The impostor's certificate: its own key, the real agent's names.
        let impostor = try Impostor(names: try Self.dnsNames(try Self.servedCertificate(port: agent.port, serverName: PeerCertificate.serverName)))
        defer { impostor.stop() }
        let port = impostor.port
        // The impostor answers anyone who does not check (trust on first use does not).
        let unchecked = UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: try UpstreamTransport.peerTLSContext()))
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ping", headers: ["Host": "127.0.0.1"])
        #expect(try unchecked.collect(head, on: MultiThreadedEventLoopGroup.singleton.next(), limit: 4096, timeout: .seconds(5)).wait().head.status.code == 204)
        #expect(throws: (any Error).self) { try Self.ping(port: port, secret: Self.secret).get() }
    }

    @Test("deckhand status --secret: answered by a standalone agent holding the secret; an agent with another secret or an impostor is refused before anything is sent")
    func commandLineChecksTheAgent() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("status-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("client.pem").path
        #expect(try Command.run(try BuiltProducts.deckhand, ["keygen", "--out", key]).status == 0)
        func status(_ port: Int) throws -> CommandResult {
            try Command.run(try BuiltProducts.deckhand, ["status", "--address", "127.0.0.1:\(port)", "--key", key, "--secret", Self.secret, "--json"], timeout: 40)
        }

        let agent = try Self.agent(standalone: true)
        defer { agent.stop() }
        let answered = try status(agent.port)
        #expect(answered.status == 0, "\(answered.output) \(answered.errorOutput)")
        let answer = try? JSONSerialization.jsonObject(with: Data(answered.output.utf8)) as? [String: Any]
        #expect((answer?["Engine"] as? [String: Any])?["Answers"] as? Bool == true, "\(answered.output)")

        let stranger = try Self.agent(secret: "another secret", standalone: true)
        defer { stranger.stop() }
        let refused = try status(stranger.port)
        #expect(refused.status == 1)
        #expect(refused.output.contains("not vouched for under this secret"), "\(refused.output) \(refused.errorOutput)")

        let impostor = try Impostor(names: try Self.dnsNames(try Self.servedCertificate(port: agent.port, serverName: PeerCertificate.serverName)))
        defer { impostor.stop() }
        let phished = try status(impostor.port)
        #expect(phished.status == 1)
        #expect(phished.output.contains("not vouched for under this secret"), "\(phished.output) \(phished.errorOutput)")
        #expect(impostor.read.isEmpty, "the impostor read: \(String(decoding: impostor.read.prefix(300), as: UTF8.self))")
    }

    /// The secret need not be on the command line (every user's `ps` shows it there):
    /// a file, or the agent's own environment, as in `docker exec` into its container.
    @Test("deckhand status takes the secret from --secret-file, AGENT_SECRET or AGENT_SECRET_FILE; a blank one is refused naming where it came from")
    func commandLineSecretSources() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("status-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("client.pem").path
        #expect(try Command.run(try BuiltProducts.deckhand, ["keygen", "--out", key]).status == 0)
        // A rotation's file: a blank line, the agent's secret, an old one.
        let file = folder.appendingPathComponent("secret").path
        try Data(" \n\(Self.secret)\nold-secret-of-the-rotation\n".utf8).write(to: URL(fileURLWithPath: file))
        let blank = folder.appendingPathComponent("blank").path
        try Data(" \n\t\n".utf8).write(to: URL(fileURLWithPath: blank))
        let agent = try Self.agent(standalone: true)
        defer { agent.stop() }
        func status(_ arguments: [String], _ environment: [String: String]) throws -> CommandResult {
            try Command.run(try BuiltProducts.deckhand, ["status", "--address", "127.0.0.1:\(agent.port)", "--key", key, "--json"] + arguments,
                            environment: environment, timeout: 40)
        }
        for (arguments, environment) in [(["--secret-file", file], [String: String]()), ([], ["AGENT_SECRET": Self.secret]), ([], ["AGENT_SECRET_FILE": file])] {
            let answered = try status(arguments, environment)
            #expect(answered.status == 0, "\(arguments) \(environment): \(answered.output) \(answered.errorOutput)")
            let answer = try? JSONSerialization.jsonObject(with: Data(answered.output.utf8)) as? [String: Any]
            #expect((answer?["Engine"] as? [String: Any])?["Answers"] as? Bool == true, "\(answered.output)")
        }
        // Without any, the agent is not checked and refuses the unsigned-for-secret key.
        let without = try status([], [:])
        #expect(without.status != 0, "\(without.output)")
        let refused = try status(["--secret-file", blank], [:])
        #expect(refused.status == 64, "\(refused.output) \(refused.errorOutput)")
        #expect(refused.errorOutput.contains("--secret-file"), "\(refused.errorOutput)")
        let blankVariable = try status([], ["AGENT_SECRET": " \t"])
        #expect(blankVariable.status == 64 && blankVariable.errorOutput.contains("AGENT_SECRET"), "\(blankVariable.errorOutput)")
    }

    @Test("during a rotation a certificate made under old+new passes peers holding either; once the old secret is dropped, it is made again and an old-only peer refuses it")
    func rotation() throws {
        let both = PeerKey(secrets: ["new secret", "old secret"])
        let served = PeerCertificate(peerKey: both)
        func chain() throws -> [NIOSSLCertificate] {
            guard case .certificate(let leaf)? = try served.override().certificateChain?.first else { throw TestSetupError("no certificate") }
            return [leaf]
        }
        let (old, new) = (PeerKey(secret: "old secret"), PeerKey(secret: "new secret"))
        #expect(PeerCertificate.verify(try chain(), by: old) == .certificateVerified)
        #expect(PeerCertificate.verify(try chain(), by: new) == .certificateVerified)
        #expect(PeerCertificate.verify(try chain(), by: PeerKey(secret: "another")) == .failed)
        both.replaceSecrets(["new secret"])
        #expect(PeerCertificate.verify(try chain(), by: new) == .certificateVerified)
        #expect(PeerCertificate.verify(try chain(), by: old) == .failed)
    }

    @Test("once a rotation drops the secret a pooled peer connection was checked under, it is not used again: the next exchange is checked anew")
    func rotationDropsCheckedConnections() throws {
        // The agent holds only the old secret; this side holds both, then only the new.
        let agent = try Self.agent(secret: "old secret")
        defer { agent.stop() }
        let peerKey = PeerKey(secrets: ["new secret", "old secret"])
        let pool = UpstreamPool(transport: .tls(
            host: "127.0.0.1", port: agent.port, context: try UpstreamTransport.peerTLSContext(proven: true), vouchedBy: peerKey))
        defer { pool.closeIdle() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let ping = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ping", headers: ["Host": "127.0.0.1"])
        func exchange() throws -> UInt { try pool.collect(ping, on: loop, limit: 4096, timeout: .seconds(5)).wait().head.status.code }
        #expect(try exchange() == 204)
        #expect(try exchange() == 204)
        #expect(pool.idleCount == 1, "the connection is pooled while the secrets stand")
        peerKey.replaceSecrets(["new secret"])
        #expect(throws: (any Error).self, "a connection checked under the dropped secret was used again") { try exchange() }
        #expect(pool.idleCount == 0)
    }

    @Test("the certificate key is scrypt's (N = 2^15, r = 8, p = 1), as OpenSSL and Python derive it, not the proofs' HKDF key")
    func certificateKeyIsScrypt() throws {
        let secret = "certificate-key-\(UUID().uuidString)"
        let ours = PeerKey.certificateKey(secret).withUnsafeBytes { HexEncoding.encode($0) }
        #expect(ours == (try PeerKeyTests.opensslCertificateKey(secret)))
        let python = try Command.run("python3", ["-c", "import hashlib, sys; print(hashlib.scrypt(sys.argv[1].encode(), salt=b'deckhand certificate key v2', n=2**15, r=8, p=1, maxmem=2**26, dklen=32).hex())", secret])
        #expect(python.output.trimmingCharacters(in: .whitespacesAndNewlines) == ours, "\(python.errorOutput)")
        #expect(ours != (try PeerKeyTests.opensslKey(secret)))
        // Made once, then kept: the same key again.
        #expect(PeerKey.certificateKey(secret).withUnsafeBytes { HexEncoding.encode($0) } == ours)
    }

    @Test("base 32 as Python's base64.b32encode writes it (lower case, unpadded), for every length up to 40; what no encoding gives is refused")
    func base32() throws {
        var generator = SystemRandomNumberGenerator()
        let samples = (0...40).map { length in (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let script = "import base64, sys\nfor line in sys.stdin.read().split():\n    print(base64.b32encode(bytes.fromhex(line[1:])).decode().lower().rstrip('='))"
        let input = samples.map { "x" + HexEncoding.encode($0) }.joined(separator: "\n")
        let result = try Command.run("python3", ["-c", script], input: Data(input.utf8))
        #expect(result.status == 0, "\(result.errorOutput)")
        let expected = result.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(expected.count == samples.count)
        for (bytes, text) in zip(samples, expected) {
            #expect(Base32Encoding.encode(bytes) == text, "\(bytes.count) bytes")
            #expect(Base32Encoding.decode(text) == bytes, "\(text)")
        }
        // Upper case, letters outside the alphabet, impossible lengths, and leftover bits.
        for bad in ["MFRGG", "mfrg1", "mfrg8", "a", "abc", "abcdef", "mb"] {
            #expect(Base32Encoding.decode(bad) == nil, "\(bad)")
        }
    }
}
