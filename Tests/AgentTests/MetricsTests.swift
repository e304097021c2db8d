import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TestCommands
@testable import Agent

/// `DECKHAND_METRICS_ADDR`: the real binary's Prometheus endpoint, scraped by a real
/// Prometheus server (Debian's `prometheus`) and read back through its HTTP API.
@Suite("Prometheus metrics", .serialized)
struct MetricsTests {
    /// A Prometheus server scraping one target every second, in its own folder.
    final class PrometheusServer {
        let process: ChildProcess
        let port: Int
        let folder: URL

        init(scraping target: String) throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = """
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                scrape_configs:
                  - job_name: deckhand
                    static_configs:
                      - targets: ['\(target)']
                """
            try Data(config.utf8).write(to: folder.appendingPathComponent("prometheus.yml"))
            port = try AgentProcess.freePort()
            process = try Command.spawn("prometheus", [
                "--config.file=" + folder.appendingPathComponent("prometheus.yml").path,
                "--storage.tsdb.path=" + folder.appendingPathComponent("data").path,
                "--web.listen-address=127.0.0.1:\(port)",
            ], errorLog: folder.appendingPathComponent("prometheus.log").path)
        }

        /// The values of an instant query, by their label sets (`[:]` for a plain number).
        func query(_ expression: String) throws -> [[String: String]: Double] {
            let result = try Command.run("curl", [
                "-s", "--max-time", "5", "-G", "http://127.0.0.1:\(port)/api/v1/query", "--data-urlencode", "query=\(expression)",
            ])
            guard result.status == 0,
                  let reply = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any],
                  reply["status"] as? String == "success",
                  let data = reply["data"] as? [String: Any], let series = data["result"] as? [[String: Any]] else {
                throw TestSetupError("prometheus query \(expression) failed: \(result.output) \(result.errorOutput)")
            }
            var values: [[String: String]: Double] = [:]
            for item in series {
                var labels = item["metric"] as? [String: String] ?? [:]
                labels["__name__"] = nil
                labels["job"] = nil
                labels["instance"] = nil
                if let value = item["value"] as? [Any], let text = value.last as? String, let number = Double(text) {
                    values[labels] = number
                }
            }
            return values
        }

        /// The single value of `expression`, once a scrape has brought it to what `accept`
        /// takes (or the last seen after `seconds`).
        func value(_ expression: String, within seconds: Double = 30, until accept: (Double) -> Bool) throws -> Double? {
            let deadline = Date().addingTimeInterval(seconds)
            var last: Double?
            repeat {
                if let values = try? query(expression), values.count == 1 {
                    last = values.first?.value
                    if let last, accept(last) { return last }
                }
                usleep(250_000)
            } while Date() < deadline
            return last
        }

        func log() -> String {
            (try? String(contentsOf: folder.appendingPathComponent("prometheus.log"), encoding: .utf8)) ?? ""
        }

        deinit {
            process.stop()
            try? FileManager.default.removeItem(at: folder)
        }
    }

    /// The ports of the listening TCP sockets that process `pid` holds, as the kernel
    /// tells it: the socket inodes among its descriptors, looked up in its network
    /// namespace's `tcp` and `tcp6` tables (state 0A, listening). What `ss -ltnp` does,
    /// without its scan of every process (which missed sockets while other tests
    /// started and ended processes).
    static func listeningPorts(of pid: Int32) throws -> [Int] {
        let descriptors = "/proc/\(pid)/fd"
        let inodes = Set(try FileManager.default.contentsOfDirectory(atPath: descriptors).compactMap { fd -> Substring? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(descriptors)/\(fd)"),
                  target.hasPrefix("socket:["), target.hasSuffix("]") else { return nil }
            return target.dropFirst("socket:[".count).dropLast()
        })
        var ports: [Int] = []
        for table in ["tcp", "tcp6"] {
            let text = try String(contentsOfFile: "/proc/\(pid)/net/\(table)", encoding: .utf8)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 9, fields[3] == "0A", inodes.contains(fields[9]),
                      let colon = fields[1].lastIndex(of: ":"), let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16)
                else { continue }
                ports.append(port)
            }
        }
        return ports
    }

    /// The series lines of one scrape, comments left out.
    static func scrape(_ url: String) throws -> [String] {
        let reply = try Curl.request("GET", url)
        return reply.text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
    }

    @Test("a real Prometheus scrapes what the agent's traffic made: requests, refusals, an upload, a hijack, probes, memory")
    func scrapedByPrometheus() async throws {
        let metricsPort = try AgentProcess.freePort()
        let agentPort = try AgentProcess.freePort()
        let deadPort = try AgentProcess.freePort()
        let agent = try AgentProcess(port: agentPort, environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "DECKHAND_VOLUMES_ROOT": try TestVolume.volumesRoot,
            "DECKHAND_METRICS_ADDR": "127.0.0.1:\(metricsPort)",
            // The agent probes itself and an address where nothing listens: one member,
            // and one that fails every probe.
            "AGENT_CLUSTER_ADDR": "127.0.0.1:\(agentPort),127.0.0.1:\(deadPort)",
            "DECKHAND_PROBE_INTERVAL": "0.5",
            "DECKHAND_MEMBER_TIMEOUT": "1",
        ])
        let metricsURL = "http://127.0.0.1:\(metricsPort)/metrics"
        let key = SigningKey()

        // Signed engine requests, and three unsigned ones refused.
        for _ in 0..<4 {
            #expect(try Curl.request("GET", agent.baseURL + "/version", headers: key.headers()).status == 200)
        }
        for _ in 0..<3 {
            #expect(try Curl.request("GET", agent.baseURL + "/version").status == 403)
        }
        // One upload of a known size.
        let volume = try TestVolume.create(populatedBy: "true")
        defer { volume.remove() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-up-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let payload = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try payload.write(to: folder.appendingPathComponent("up.bin"))
        let upload = try Curl.request(
            "POST", agent.baseURL + "/browse/put?volumeID=\(volume.name)", headers: key.headers(),
            extra: ["-F", "file=@\(folder.appendingPathComponent("up.bin").path)", "-F", "Path=/"])
        #expect(upload.status == 204, "\(upload.text)")
        // A hijacked attach: `docker run -i` through the agent.
        let docker = try DockerCLITests.DockerClient(address: "127.0.0.1:\(agentPort)", key: key)
        defer { docker.cleanUp() }
        let run = try docker.run(["run", "--rm", "-i", "busybox:local", "cat"], input: Data("through the hijack\n".utf8))
        #expect(run.status == 0 && run.output == "through the hijack\n", "\(run.errorOutput)")

        // One engine 404 makes its series; then 1000 distinct paths must make none.
        #expect(try Curl.request("GET", agent.baseURL + "/v1.41/deckhand-metrics-0", headers: key.headers()).status == 404)
        let before = try Self.scrape(metricsURL).filter { $0.hasPrefix("deckhand_requests_total") || $0.hasPrefix("deckhand_request_duration") }
        let curlConfig = folder.appendingPathComponent("paths.curl")
        try Data((1...1000).map { "url = \"\(agent.baseURL)/v1.41/deckhand-metrics-\($0)?q=\($0)\"\noutput = \"/dev/null\"\n" }.joined().utf8)
            .write(to: curlConfig)
        let signed = key.headers().flatMap { ["-H", "\($0.key): \($0.value)"] }
        let burst = try Command.run("curl", ["-sk", "--http1.1", "-K", curlConfig.path] + signed, timeout: 120)
        #expect(burst.status == 0, "\(burst.errorOutput)")
        let after = try Self.scrape(metricsURL).filter { $0.hasPrefix("deckhand_requests_total") || $0.hasPrefix("deckhand_request_duration") }
        #expect(after.count == before.count, "new series: \(Set(after.map { $0.split(separator: " ")[0] }).subtracting(before.map { $0.split(separator: " ")[0] }))")

        let prometheus = try PrometheusServer(scraping: "127.0.0.1:\(metricsPort)")
        let up = try prometheus.value("up{job=\"deckhand\"}", until: { $0 == 1 })
        try #require(up == 1, "Prometheus never scraped the agent: \(prometheus.log().suffix(2000))")

        func expectValue(_ expression: String, _ expected: Double, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let value = try prometheus.value(expression, until: { $0 == expected })
            #expect(value == expected, "\(expression)", sourceLocation: sourceLocation)
        }
        try expectValue("deckhand_refused_signatures_total", 3)
        try expectValue("deckhand_requests_total{family=\"refused\",status=\"403\"}", 3)
        try expectValue("deckhand_request_duration_seconds_count{family=\"refused\"}", 3)
        try expectValue("deckhand_requests_total{family=\"engine\",status=\"404\"}", 1001)
        try expectValue("deckhand_uploads_total{result=\"stored\"}", 1)
        try expectValue("deckhand_upgraded_streams_total{kind=\"hijack\"}", 1)
        try expectValue("deckhand_upgraded_streams{kind=\"hijack\"}", 0)
        try expectValue("deckhand_cluster_members", 1)
        // The multipart body: the file plus its part headers and boundaries.
        let uploaded = try prometheus.value("deckhand_upload_bytes_total", until: { $0 > 0 }) ?? 0
        #expect(uploaded > Double(payload.count) && uploaded < Double(payload.count + 1024))
        let signedVersions = try prometheus.value("deckhand_requests_total{family=\"engine\",status=\"200\"}", until: { $0 >= 4 }) ?? 0
        #expect(signedVersions >= 4)
        #expect(try prometheus.value("deckhand_requests_total{family=\"ping\",status=\"204\"}", until: { $0 >= 1 }) ?? 0 >= 1)
        #expect(try prometheus.value("deckhand_received_bytes_total", until: { $0 > 200_000 }) ?? 0 > 200_000)
        #expect(try prometheus.value("deckhand_sent_bytes_total", until: { $0 > 0 }) ?? 0 > 0)
        // Recorded through swift-metrics by the Proxy module: the pool and the prober.
        #expect(try prometheus.value("deckhand_upstream_reused_connections_total{upstream=\"engine\"}", until: { $0 > 0 }) ?? 0 > 0)
        #expect(try prometheus.value("deckhand_upstream_connect_wait_seconds_count{upstream=\"engine\"}", until: { $0 > 0 }) ?? 0 > 0)
        #expect(try prometheus.value("deckhand_cluster_probe_seconds_count{member=\"127.0.0.1:\(agentPort)\"}", until: { $0 > 0 }) ?? 0 > 0)
        #expect(try prometheus.value("deckhand_cluster_probe_failures_total{member=\"127.0.0.1:\(deadPort)\"}", until: { $0 > 0 }) ?? 0 > 0)
        #expect(try prometheus.query("deckhand_cluster_probe_failures_total{member=\"127.0.0.1:\(agentPort)\"}").isEmpty)
        // Memory as the kernel tells it.
        let resident = try prometheus.value("deckhand_process_resident_memory_bytes", until: { $0 > 0 }) ?? 0
        let kernel = Double(try agent.memory().current * 1024)
        #expect(resident > kernel / 2 && resident < kernel * 2, "\(resident) against VmRSS \(kernel)")
        #expect(try prometheus.value("deckhand_process_virtual_memory_bytes", until: { $0 > resident }) ?? 0 > resident)
        // No family outside the fixed set, whatever the paths were.
        let families = Set(try prometheus.query("deckhand_requests_total").keys.compactMap { $0["family"] })
        #expect(families.isSubset(of: Set(RouteFamily.allCases.map(\.label))), "\(families)")
    }

    @Test("an aggregated list that misses a member counts as a partial answer")
    func partialAnswer() async throws {
        // A private engine made a Swarm of one on loopback (not the suite's engine,
        // which must stay outside a Swarm), so that lists are aggregated.
        let folder = "/tmp/deckhand-metrics-swarm-\(UInt32.random(in: 0...UInt32.max))"
        let engine = LabSwarm.repositoryRoot.appendingPathComponent("scripts/engine").path
        defer {
            _ = try? Command.run(engine, ["stop", folder])
            try? FileManager.default.removeItem(atPath: folder)
        }
        let started = try Command.run(engine, ["start", folder])
        try #require(started.status == 0, "\(started.errorOutput)")
        let socket = folder + "/docker.sock"
        let swarmPort = try AgentProcess.freePort()
        let swarm = try Command.run("docker", [
            "-H", "unix://" + socket, "swarm", "init", "--advertise-addr", "127.0.0.1:\(swarmPort)", "--listen-addr", "127.0.0.1:\(swarmPort)",
        ])
        try #require(swarm.status == 0, "\(swarm.errorOutput)")

        let (portA, portB, metricsPort) = (try AgentProcess.freePort(), try AgentProcess.freePort(), try AgentProcess.freePort())
        let cluster = [
            "DECKHAND_ENGINE_SOCKET": socket, "AGENT_CLUSTER_ADDR": "127.0.0.1:\(portA),127.0.0.1:\(portB)",
            // Slow rounds: a stopped member stays listed (unanswering) for 3 rounds.
            "DECKHAND_PROBE_INTERVAL": "3", "DECKHAND_MEMBER_TIMEOUT": "1",
        ]
        let a = try AgentProcess(port: portA, environment: cluster.merging([
            "DECKHAND_NODE_NAME": "node-a", "DECKHAND_METRICS_ADDR": "127.0.0.1:\(metricsPort)",
        ]) { $1 })
        let b = try AgentProcess(port: portB, environment: cluster.merging(["DECKHAND_NODE_NAME": "node-b"]) { $1 })
        let key = SigningKey()
        var members = 0
        for _ in 0..<100 where members < 2 {
            members = ((try? Curl.request("GET", a.baseURL + "/agents", headers: key.headers()).json()) as? [Any])?.count ?? 0
            if members < 2 { usleep(200_000) }
        }
        try #require(members == 2)
        let whole = try Curl.request("GET", a.baseURL + "/containers/json?all=1", headers: key.headers())
        #expect(whole.status == 200 && whole.headers["x-portaineragent-unreachable-nodes"] == nil)
        b.stop()
        let partial = try Curl.request("GET", a.baseURL + "/containers/json?all=1", headers: key.headers())
        #expect(partial.status == 200)
        #expect(partial.headers["x-portaineragent-unreachable-nodes"] == "node-b")

        let series = try Self.scrape("http://127.0.0.1:\(metricsPort)/metrics")
        #expect(series.contains("deckhand_aggregation_partial_answers_total{family=\"cluster-list\"} 1"), "\(series)")
        #expect(series.contains("deckhand_requests_total{family=\"cluster-list\",status=\"200\"} 2"))
        #expect(series.contains("deckhand_cluster_members 2.0"))
    }

    @Test("the agent's port never serves the metrics; the endpoint answers /metrics only; unset, nothing else listens")
    func onlyItsOwnListener() async throws {
        // IPv6 loopback where the machine has it, as [::1]:port.
        let hasIPv6 = ((try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? "").contains(" lo")
        let metricsPort = try AgentProcess.freePort()
        let host = hasIPv6 ? "[::1]" : "127.0.0.1"
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_METRICS_ADDR": "\(host):\(metricsPort)",
        ])
        let base = "http://\(host):\(metricsPort)"
        let exposition = try Curl.request("GET", base + "/metrics")
        #expect(exposition.status == 200)
        #expect(exposition.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(exposition.text.contains("deckhand_requests_total{family=\"ping\",status=\"204\"}"))
        for path in ["/", "/metrics/x", "/_ping", "/version"] {
            let other = try Curl.request("GET", base + path)
            #expect(other.status == 404, "\(path)")
            #expect((try other.json() as? [String: String])?["message"] == "Not found")
        }
        #expect(try Curl.request("POST", base + "/metrics").status == 405)
        // On the agent's port /metrics is an engine path like any other: signed, and the engine's 404.
        #expect(try Curl.request("GET", agent.baseURL + "/metrics").status == 403)
        let relayed = try Curl.request("GET", agent.baseURL + "/metrics", headers: SigningKey().headers())
        #expect(relayed.status == 404)
        #expect(!relayed.text.contains("deckhand_"))
        // A child started by this test process also holds the listening sockets other
        // tests have open at that moment (inherited descriptors): those are this
        // process's own, and are left out.
        let ports = try Set(Self.listeningPorts(of: agent.pid)).subtracting(Self.listeningPorts(of: getpid()))
        #expect(ports == [agent.port, metricsPort], "listening: \(ports)")

        let plain = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        let plainPorts = try Set(Self.listeningPorts(of: plain.pid)).subtracting(Self.listeningPorts(of: getpid()))
        #expect(plainPorts == [plain.port], "listening: \(plainPorts)")
    }

    @Test("an unauthenticated client costs the metrics endpoint little: one answer per connection, idle and trickling ones closed, 8 per address, 64 at once")
    func endpointBounds() throws {
        let metricsPort = try AgentProcess.freePort()
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_METRICS_ADDR": "0.0.0.0:\(metricsPort)",
        ])
        defer { agent.stop() }
        // Python's sockets are the client: what it reads is what the endpoint sent. Its
        // connections come from several loopback addresses (127.0.0.0/8 is all local).
        let script = """
            import json, socket, sys, time
            port = int(sys.argv[1])
            def connect(source="127.0.0.1"):
                return socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
            def read_all(sock):
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return data
                    data += chunk
            def closed_now(socks):
                time.sleep(2)
                count = 0
                for one in socks:
                    one.settimeout(0.2)
                    try:
                        if one.recv(1) == b"":
                            count += 1
                    except socket.timeout:
                        pass
                return count
            # 1000 pipelined scrapes on one connection.
            sock = connect()
            sock.sendall(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * 1000)
            answers = read_all(sock).count(b"HTTP/1.1 200")
            sock.close()
            # 9 silent connections from one address: one is closed on arrival.
            same = [connect("127.0.0.2") for _ in range(9)]
            same_closed = closed_now(same)
            for one in same:
                one.close()
            time.sleep(0.5)
            # 65 silent connections from 9 addresses (8 each at most): at least one is
            # closed on arrival, the others are held, until the idle timeout.
            held = [connect("127.0.0.%d" % (3 + i // 8)) for i in range(65)]
            closed_at_once = closed_now(held)
            started = time.time()
            for one in held:
                one.settimeout(20)
                read_all(one)
            idle_closed_after = time.time() - started
            # A head trickled a byte every 2 s is never silent: it is closed at the lifetime.
            trickle = connect("127.0.0.20")
            trickle.sendall(b"GET /metrics HTTP/1.1\\r\\nX-Slow: ")
            started = time.time()
            trickle_closed_after = None
            while time.time() - started < 40:
                try:
                    trickle.sendall(b"a")
                except OSError:
                    trickle_closed_after = time.time() - started
                    break
                trickle.settimeout(2)
                try:
                    if trickle.recv(65536) == b"":
                        trickle_closed_after = time.time() - started
                        break
                except socket.timeout:
                    pass
            scrape = connect()
            scrape.sendall(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            after = read_all(scrape).startswith(b"HTTP/1.1 200")
            print(json.dumps({"answers": answers, "same_closed": same_closed, "closed_at_once": closed_at_once,
                              "idle_closed_after": idle_closed_after, "trickle_closed_after": trickle_closed_after, "after": after}))
            """
        let result = try Command.run("python3", ["-c", script, String(metricsPort)], timeout: 120)
        #expect(result.status == 0, "\(result.errorOutput)")
        let found = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(found["answers"] as? Int == 1, "\(found)")
        #expect(found["same_closed"] as? Int == 1, "\(found)")
        // At most 64 held: at least one of 65 closed on arrival (two if the scrape's
        // connection was not yet counted out).
        #expect((found["closed_at_once"] as? Int ?? 0) >= 1, "\(found)")
        #expect((found["idle_closed_after"] as? Double ?? 99) < 15, "\(found)")
        let trickled = found["trickle_closed_after"] as? Double ?? 99
        #expect(trickled > 15 && trickled < 25, "\(found)")
        #expect(found["after"] as? Bool == true, "\(found)")
    }

    /// A member answering forwarded requests with statuses HTTP does not define: before,
    /// each made a series of its own (llhttp reads 100 to 999).
    @Test("statuses HTTP does not define are counted as other, so a peer cannot make series")
    func undefinedStatusesMakeNoSeries() throws {
        let metricsPort = try AgentProcess.freePort()
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        impostor.answer("/deckhand-699", with: ByteBuffer(string: "{}"), status: HTTPResponseStatus(statusCode: 699))
        impostor.answer("/deckhand-799", with: ByteBuffer(string: "{}"), status: HTTPResponseStatus(statusCode: 799))
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo])
        defer { engine.stop() }
        let key = SigningKey()
        let agent = try HostileMemberTests.agent(
            with: impostor, named: "member", engine: engine, key: key, environment: ["DECKHAND_METRICS_ADDR": "127.0.0.1:\(metricsPort)"])
        defer { agent.stop() }
        for path in ["/deckhand-699", "/deckhand-799"] {
            let reply = try Curl.request("GET", agent.baseURL + path, headers: key.headers().merging(["X-PortainerAgent-Target": "member"]) { $1 })
            #expect([699, 799].contains(reply.status), "\(reply.status) \(reply.text)")
        }
        let series = try Self.scrape("http://127.0.0.1:\(metricsPort)/metrics").filter { $0.hasPrefix("deckhand_requests_total") }
        #expect(series.contains { $0.contains(#"family="forward""#) && $0.contains(#"status="other""#) && $0.hasSuffix(" 2") }, "\(series)")
        #expect(!series.contains { $0.contains(#"status="699""#) || $0.contains(#"status="799""#) }, "\(series)")
    }

    @Test("the metrics address may not be the agent's own: one line, exit 2", arguments: [
        ["AGENT_PORT": "9443", "DECKHAND_METRICS_ADDR": "127.0.0.1:9443"],
        ["AGENT_HOST": "127.0.0.1", "AGENT_PORT": "9443", "DECKHAND_METRICS_ADDR": "0.0.0.0:9443"],
        ["DECKHAND_METRICS_ADDR": "[::]:9001"],
        ["DECKHAND_METRICS_ADDR": "9100"],
        ["DECKHAND_METRICS_ADDR": "::1:9100"],
    ])
    func refusedAddress(environment: [String: String]) throws {
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: environment, timeout: 20)
        #expect(result.status == 2)
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("DECKHAND_METRICS_ADDR") == true)
    }

    @Test("listen addresses read as host:port or [IPv6]:port")
    func listenAddresses() throws {
        #expect(ListenAddress("127.0.0.1:9100") == ListenAddress(host: "127.0.0.1", port: 9100))
        #expect(ListenAddress("[::1]:9100") == ListenAddress(host: "::1", port: 9100))
        #expect(ListenAddress("localhost:0") == ListenAddress(host: "localhost", port: 0))
        for invalid in ["", "9100", ":9100", "::1:9100", "[::1]", "[::1]9100", "[127.0.0.1]:9100", "host:port", "host:70000", "a b:1", "host:+1"] {
            #expect(ListenAddress(invalid) == nil, "\(invalid)")
        }
        #expect(ListenAddress(host: "::1", port: 9100).description == "[::1]:9100")
        let configuration = try AgentConfiguration.resolve(flags: [.metricsAddress: "127.0.0.1:9100"], environment: [:])
        #expect(configuration.metricsAddress == ListenAddress(host: "127.0.0.1", port: 9100))
        #expect(try AgentConfiguration.resolve(flags: [:], environment: [:]).metricsAddress == nil)
        // Another port of the same host, and port 0 on both sides, are fine.
        #expect(try AgentConfiguration.resolve(flags: [.port: "0", .metricsAddress: "127.0.0.1:0"], environment: [:]).metricsAddress != nil)
    }
}
