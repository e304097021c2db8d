import Foundation
import Testing
import TestCommands
@testable import Proxy

/// A cluster address that names hundreds of agents that never answer (a hostile or
/// broken resolver, or a stack file's long list): the real agent probes them in waves,
/// never all at once. The count is the kernel's, as a plain TCP listener sees it.
@Suite("Membership probes come in waves")
struct ProbeWavesTests {
    /// Accepts every connection on one port of every loopback address and never answers;
    /// a connection ends when its prober closes it. Writes, as JSON, the most open at
    /// once and the destination addresses seen so far.
    static let silentListener = """
        import json, os, selectors, socket, sys
        port_file, state_file = sys.argv[1:]
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        server.listen(4096)
        with open(port_file + ".tmp", "w") as f: f.write(str(server.getsockname()[1]))
        os.replace(port_file + ".tmp", port_file)
        selector = selectors.DefaultSelector()
        selector.register(server, selectors.EVENT_READ)
        connections, most, seen = set(), 0, set()
        while True:
            for key, _ in selector.select(0.2):
                if key.fileobj is server:
                    connection, _ = server.accept()
                    seen.add(connection.getsockname()[0])
                    connections.add(connection)
                    selector.register(connection, selectors.EVENT_READ)
                    most = max(most, len(connections))
                elif not key.fileobj.recv(65536):
                    selector.unregister(key.fileobj)
                    connections.discard(key.fileobj)
                    key.fileobj.close()
            with open(state_file + ".tmp", "w") as f: json.dump({"most": most, "seen": len(seen)}, f)
            os.replace(state_file + ".tmp", state_file)
        """

    @Test("300 silent addresses are all probed, at most 64 at a time, and a long round drops no member that answered in it")
    func silentAddressesAreProbedInWaves() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("probe-waves-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let portFile = directory.appendingPathComponent("port").path, stateFile = directory.appendingPathComponent("state").path
        let listener = try Command.spawn("/usr/bin/python3", ["-c", Self.silentListener, portFile, stateFile])
        defer { listener.stop() }
        var listenerPort: Int?
        for _ in 0..<100 where listenerPort == nil {
            listenerPort = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if listenerPort == nil { usleep(100_000) }
        }
        let silentPort = try #require(listenerPort, "the silent listener did not start")
        // 127.0.5.1 … 127.0.6.44: 300 loopback addresses, one silent listener behind them all.
        let silent = (0..<300).map { "127.0.\(5 + ($0 + 1) / 256).\(($0 + 1) % 256):\(silentPort)" }
        let port = try AgentProcess.freePort()
        let agent = try AgentProcess(port: port, environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "AGENT_CLUSTER_ADDR": (["127.0.0.1:\(port)"] + silent).joined(separator: ","),
            "DECKHAND_PROBE_INTERVAL": "0.3", "DECKHAND_MEMBER_TIMEOUT": "2", "LOG_LEVEL": "INFO",
        ])
        defer { agent.stop() }

        struct State: Decodable { var most: Int; var seen: Int }
        var state = State(most: 0, seen: 0)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, state.seen < silent.count {
            usleep(250_000)
            if let data = FileManager.default.contents(atPath: stateFile), let read = try? JSONDecoder().decode(State.self, from: data) { state = read }
        }
        #expect(state.seen == silent.count, "addresses probed: \(state.seen) of \(silent.count)")
        #expect(state.most <= ClusterMembership.probesAtOnce, "probes open at once: \(state.most)")
        // Waves, not one probe after another.
        #expect(state.most >= ClusterMembership.probesAtOnce / 2, "probes open at once: \(state.most)")
        // The round lasts several member timeouts, far more than three probe intervals
        // (0.9 s): once it has ended, the member that answered at its start, the agent
        // itself, must not have been dropped as silent.
        usleep(3_000_000)
        let lost = agent.logLines().filter { $0.contains("cluster member lost") }
        #expect(lost.isEmpty, "\(lost)")
        let ping = try Curl.request("GET", agent.baseURL + "/_ping", headers: SigningKey().headers())
        #expect(ping.status == 200, "\(ping.status) \(ping.text.prefix(200))")
    }
}
