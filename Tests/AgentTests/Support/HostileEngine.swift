import Foundation
import TestCommands

/// An upstream that breaks HTTP on purpose, on a unix socket the agent takes for its
/// engine (`DECKHAND_ENGINE_SOCKET`): Python's sockets, not a Docker API. A request
/// whose target starts with `/hostile` gets `reply`, as bytes, and the connection is
/// then read until the agent closes it; a request whose first line contains a key of
/// `answers` gets a 200 with that JSON; any other (the agent's own, at start) gets `{}`;
/// either once its body (`Content-Length`) has come, as from Go's server.
/// Each `/hostile` connection's log line: the first request line, then every byte
/// read after that request's head, in hex (`log`).
final class HostileEngine {
    let folder: URL
    let socket: String
    private let server: ChildProcess

    /// What a Swarm manager's engine says of itself, for an agent to take itself for one.
    static let swarmManagerInfo = #"{"Name":"stand-in","Swarm":{"LocalNodeState":"active","ControlAvailable":true}}"#

    /// `replyDelay`: seconds between a `/hostile` request's head and `reply`.
    init(reply: [UInt8] = [], answers: [String: String] = [:], replyDelay: Double = 0) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        socket = folder.appendingPathComponent("engine.sock").path
        let replyFile = folder.appendingPathComponent("reply")
        try Data(reply).write(to: replyFile)
        let answersFile = folder.appendingPathComponent("answers.json")
        try JSONEncoder().encode(answers).write(to: answersFile)
        server = try Command.spawn("python3", ["-c", """
            import json, os, socket, sys, threading, time
            path, reply, log = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "a", buffering=1)
            delay = float(sys.argv[5])
            answers = json.load(open(sys.argv[4]))
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(path)
            listener.listen(64)
            def serve(connection):
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    more = connection.recv(65536)
                    if not more:
                        return
                    data += more
                head, rest = data.split(b"\\r\\n\\r\\n", 1)
                first = head.split(b"\\r\\n", 1)[0].decode("latin-1")
                if " /hostile" not in first:
                    # As Go's server does, the request's body is read before the answer goes out.
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\\r\\n")[1:] if line.lower().startswith(b"content-length:")), 0)
                    while len(rest) < length:
                        more = connection.recv(65536)
                        if not more:
                            return
                        rest += more
                    body = next((answer for key, answer in answers.items() if key in first), "{}").encode()
                    connection.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
                    connection.close()
                    return
                try:
                    time.sleep(delay)
                    connection.sendall(reply)
                    while True:
                        more = connection.recv(65536)
                        if not more:
                            break
                        rest += more
                except OSError:
                    pass
                log.write(first + " " + rest.hex() + "\\n")
                connection.close()
            while True:
                connection, _ = listener.accept()
                threading.Thread(target=serve, args=(connection,), daemon=True).start()
            """, socket, replyFile.path, folder.appendingPathComponent("log").path, answersFile.path, String(replyDelay)])
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            server.stop()
            try? FileManager.default.removeItem(at: folder)
            throw TestSetupError("the hostile engine did not start")
        }
    }

    /// One line per connection that asked for `/hostile…` and has ended.
    var log: [String] {
        ((try? String(contentsOf: folder.appendingPathComponent("log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(at: folder)
    }

    deinit { stop() }
}
