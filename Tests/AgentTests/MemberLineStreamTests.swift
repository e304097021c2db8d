import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TestCommands
@testable import Proxy

/// What the fleet's event stream takes from a member: whole lines that are one JSON
/// object each, and one end naming why the member stopped. Against a real agent in a
/// umockdev testbed, a closed port, an impostor that answers 500, and a TLS server
/// (Python's, with an openssl-made certificate) that sends what no agent would.
@Suite("A member's event stream, line by line")
struct MemberLineStreamTests {
    final class Received: Sendable {
        private let state = NIOLockedValueBox<(lines: [String], ends: [MemberLineStream.End])>(([], []))
        var lines: [String] { state.withLockedValue { $0.lines } }
        var ends: [MemberLineStream.End] { state.withLockedValue { $0.ends } }
        func line(_ buffer: ByteBuffer) { state.withLockedValue { $0.lines.append(String(buffer: buffer)) } }
        func end(_ end: MemberLineStream.End) { state.withLockedValue { $0.ends.append(end) } }

        func wait(timeout: TimeInterval = 5, until done: (Received) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while !done(self) {
                guard Date() < deadline else { return false }
                usleep(10_000)
            }
            return true
        }
    }

    /// Opens `path` on `host:port` with `headers`; the stream lives on a loop of the
    /// shared group, as a client connection's would.
    static func open(port: Int, path: String = "/v2/host/events", headers: [String: String] = [:], into received: Received) throws -> NIOLoopBound<MemberLineStream> {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let pool = UpstreamPool(transport: .tls(host: "127.0.0.1", port: port, context: try UpstreamTransport.peerTLSContext()))
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        let request = head
        return try eventLoop.submit {
            NIOLoopBound(MemberLineStream(request, pool: pool, on: eventLoop, onLine: received.line, onEnd: received.end), eventLoop: eventLoop)
        }.wait()
    }

    @Test("a real agent's events come through as whole JSON lines; its going away is the end")
    func realAgent() throws {
        let (agent, control) = try HostEventsTests.agent(nodeName: "member-a")
        defer { agent.stop() }
        let received = Received()
        let stream = try Self.open(port: agent.port, headers: SigningKey().headers(), into: received)
        usleep(500_000)
        try HostEventsTests.inject("change \(HostEventsTests.sdb)", control: control)
        try HostEventsTests.inject("add \(HostEventsTests.usbDevice)", control: control)
        #expect(received.wait { $0.lines.count == 2 }, "\(received.lines) \(received.ends)")
        let first = try JSONSerialization.jsonObject(with: Data(received.lines.first?.utf8 ?? "".utf8)) as? [String: Any]
        #expect(first?["NodeName"] as? String == "member-a")
        #expect(first?["Action"] as? String == "change")
        #expect(received.lines.allSatisfy { !$0.contains("\n") })
        agent.stop()
        #expect(received.wait { !$0.ends.isEmpty }, "no end after the agent stopped")
        #expect(received.ends.count == 1)
        _ = stream
    }

    @Test("nobody listening, or an answer other than 200: one end, naming it")
    func unreachableAndRefused() throws {
        let received = Received()
        let stream = try Self.open(port: try AgentProcess.freePort(), into: received)
        #expect(received.wait { !$0.ends.isEmpty })
        if case .unreachable = received.ends.first {} else { Issue.record("\(received.ends)") }

        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        let refused = Received()
        let other = try Self.open(port: impostor.port, into: refused)
        #expect(refused.wait { !$0.ends.isEmpty })
        #expect(refused.ends == [.refused(.internalServerError)])
        #expect(refused.lines.isEmpty)
        _ = (stream, other)
    }

    /// A TLS server that answers every request 200 with `body` (chunked as one chunk),
    /// then holds the connection open. With `thenEnd`, it ends the first answer after `body` and closes
    /// it, and answers every later request with a 200 that sends nothing and is held.
    static func liar(_ body: String, thenEnd: Bool = false, status: String = "200 OK") throws -> (ChildProcess, port: Int, folder: URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("liar-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let made = try Command.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=liar", "-days", "1",
            "-keyout", folder.appendingPathComponent("key.pem").path, "-out", folder.appendingPathComponent("cert.pem").path,
        ])
        guard made.status == 0 else { throw TestSetupError("openssl: \(made.errorOutput)") }
        try Data(body.utf8).write(to: folder.appendingPathComponent("body"))
        let port = try AgentProcess.freePort()
        let script = """
            import socket, ssl, sys
            folder, port, then_end, status = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4].encode()
            body = open(folder + "/body", "rb").read()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(folder + "/cert.pem", folder + "/key.pem")
            server = socket.create_server(("127.0.0.1", port))
            head = b"HTTP/1.1 " + status + b"\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
            held = []
            while True:
                connection, _ = server.accept()
                tls = context.wrap_socket(connection, server_side=True)
                tls.recv(65536)
                if not then_end:
                    tls.sendall(head + b"%x\\r\\n" % len(body) + body + b"\\r\\n")
                    held.append(tls)
                elif not held:
                    tls.sendall(head + b"%x\\r\\n" % len(body) + body + b"\\r\\n0\\r\\n\\r\\n")
                    tls.close()
                    held.append(None)
                else:
                    tls.sendall(head)
                    held.append(tls)
            """
        let process = try Command.spawn("/usr/bin/python3", ["-c", script, folder.path, String(port), thenEnd ? "1" : "0", status])
        for _ in 0..<100 {
            if (try? Command.run("sh", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]).status) == 0 { break }
            usleep(50_000)
        }
        return (process, port, folder)
    }

    @Test("a line that is not one JSON object, or is too long, ends the member's stream after the good ones")
    func badLines() throws {
        let cases: [(body: String, good: Int)] = [
            ("{\"a\":1}\n{\"b\":2}\nnot json\n{\"c\":3}\n", 2),
            ("{\"a\":1}\n{\"b\":2}{\"c\":3}\n", 1),
            ("{\"a\":1}\n[1,2]\n", 1),
            ("{\"a\":\"" + String(repeating: "x", count: MemberLineStream.maxLineLength) + "\"}\n", 0),
            ("{\"a\":1}\n{\"unfinished\":" + String(repeating: " ", count: MemberLineStream.maxLineLength + 1), 1),
        ]
        for (body, good) in cases {
            let (liar, port, folder) = try Self.liar(body)
            defer { liar.stop(); try? FileManager.default.removeItem(at: folder) }
            let received = Received()
            let stream = try Self.open(port: port, into: received)
            #expect(received.wait { !$0.ends.isEmpty }, "\(body.prefix(40)): no end")
            #expect(received.lines.count == good, "\(body.prefix(40)): \(received.lines.map { $0.prefix(20) })")
            if case .badLine = received.ends.first {} else { Issue.record("\(body.prefix(40)): \(received.ends)") }
            _ = stream
        }
    }
}
