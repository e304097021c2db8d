import Foundation
import TestCommands

/// fixtures/browser-console/portainer-proxy.py in a process of its own: what a browser
/// gets from a Portainer server for the console page (the page, xterm.js, and the
/// console websocket relayed to the agent, signed with `key`, frame types kept).
final class PortainerProxyStandIn {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/browser-console")

    let process: ChildProcess
    let port: Int
    private let directory: URL

    /// The console page's address for an exec (`kind` "exec") or a container (`"attach"`).
    func consoleURL(_ kind: String, id: String) -> String {
        "http://127.0.0.1:\(port)/#\(kind)=\(id)"
    }

    init(agentPort: Int, key: SigningKey) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("deckhand-proxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        let log = directory.appendingPathComponent("proxy.log")
        process = try Command.spawn("/usr/bin/python3", [
            Self.fixtures.appendingPathComponent("portainer-proxy.py").path, String(agentPort), portFile.path,
        ], environment: key.headers(), errorLog: log.path)
        var port: Int?
        for _ in 0..<100 where process.isRunning {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let number = Int(text) {
                port = number
                break
            }
            usleep(100_000)
        }
        guard let port else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            process.stop()
            try? FileManager.default.removeItem(at: directory)
            throw TestSetupError("the Portainer stand-in did not start (python3-websockets missing? run scripts/setup): \(output)")
        }
        self.port = port
    }

    /// What the stand-in wrote to standard error so far.
    var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("proxy.log"), encoding: .utf8)) ?? ""
    }

    func stop() {
        process.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
