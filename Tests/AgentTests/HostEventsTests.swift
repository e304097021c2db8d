import Foundation
import Testing
import TestCommands

/// A client of an NDJSON event stream: curl, unbuffered, writing the body to a file
/// that the test reads line by line as it grows.
final class EventStreamClient {
    private let process: ChildProcess
    private let folder: URL
    private var body: URL { folder.appendingPathComponent("body") }
    private var headerFile: URL { folder.appendingPathComponent("headers") }

    /// Opens `url` signed with `key`; `extra` goes to curl (e.g. `--limit-rate`).
    init(_ url: String, key: SigningKey, headers: [String: String] = [:], extra: [String] = []) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var arguments = ["-sk", "--http1.1", "-N", "-D", folder.appendingPathComponent("headers").path, "-o", folder.appendingPathComponent("body").path]
        for (name, value) in key.headers().merging(headers, uniquingKeysWith: { $1 }) { arguments += ["-H", "\(name): \(value)"] }
        process = try Command.spawn("curl", arguments + extra + [url])
    }

    /// The response head, once curl has it (waits up to `timeout`).
    func head(timeout: TimeInterval = 5) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let text = try? String(contentsOf: headerFile, encoding: .utf8), text.hasSuffix("\r\n\r\n") { return text }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    /// Every whole line so far, each parsed as a JSON object (nil for one that is not).
    var lines: [[String: Any]?] {
        let data = (try? Data(contentsOf: body)) ?? Data()
        return data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().map {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        }
    }

    /// The first line after the first `after` lines that `matches`, waiting up to `timeout`.
    func line(after: Int = 0, timeout: TimeInterval, where matches: ([String: Any]) -> Bool) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let found = lines.dropFirst(after).compactMap({ $0 }).first(where: matches) { return found }
            usleep(5_000)
        } while Date() < deadline
        return nil
    }

    var isRunning: Bool { process.isRunning }

    func stop() {
        process.stop()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }
}

@Suite("GET /v2/host/events")
struct HostEventsTests {
    static let hardware = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/hardware")
    static let usbDevice = "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1"
    static let usbInterface = usbDevice + "/2-1:1.0"
    static let sdb = usbInterface + "/host2/target2:0:0/2:0:0:0/block/sdb"
    static let xhci = "/sys/devices/pci0000:00/0000:00:14.0"
    static let eno1 = "/sys/devices/pci0000:00/0000:00:1f.6/net/eno1"

    /// `deckhand serve` with host management in a umockdev testbed of a USB stick and two
    /// network cards, and the named pipe that makes uevents in it.
    static func agent(nodeName: String = "fixture-node") throws -> (AgentProcess, control: String) {
        let control = FileManager.default.temporaryDirectory.appendingPathComponent("uevents-\(UUID().uuidString)").path
        let trees = ["usb-stick", "nic"].map { hardware.appendingPathComponent("\($0).umockdev").path }.joined(separator: ",")
        let agent = try AgentProcess(
            environment: [
                "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": hardware.appendingPathComponent("host-root").path,
                "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_NODE_NAME": nodeName, "LOG_LEVEL": "DEBUG",
            ],
            launcher: ["umockdev-wrapper", "/usr/bin/python3", hardware.appendingPathComponent("testbed-with-uevent-control.py").path, trees, control, "--"])
        return (agent, control)
    }

    /// Sends one order to the testbed (see testbed-with-uevent-control.py).
    static func inject(_ order: String, control: String) throws {
        // Non-blocking: a testbed that is gone fails the test instead of hanging it.
        let fd = open(control, O_WRONLY | O_NONBLOCK)
        guard fd >= 0 else { throw TestSetupError("the testbed is gone (\(control): errno \(errno))") }
        defer { close(fd) }
        let bytes = Array((order + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw TestSetupError("cannot write to \(control)") }
    }

    /// The subscriber counts the agent logged as streams closed.
    static func closedStreamCounts(_ agent: AgentProcess) -> [Int] {
        agent.logLines().filter { $0.contains("host event stream closed") }.compactMap { line in
            guard let range = line.range(of: #"subscribers[=:]"?(\d+)"#, options: .regularExpression) else { return nil }
            return Int(line[range].filter(\.isNumber))
        }
    }

    @Test("uevents of the inventory's subsystems arrive within 1 s, tagged with the node; others do not")
    func eventsArriveTagged() throws {
        let (agent, control) = try Self.agent()
        defer { agent.stop() }
        // The agent trusts the first key it sees: one key for every client.
        let key = SigningKey()
        let stream = try EventStreamClient(agent.baseURL + "/v2/host/events", key: key)
        // Outside a Swarm, the fleet's stream is this node's.
        let fleet = try EventStreamClient(agent.baseURL + "/v2/cluster/host/events", key: key)
        #expect(fleet.head()?.hasPrefix("HTTP/1.1 200") == true)
        let head = try #require(stream.head(), "no answer")
        #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
        #expect(head.lowercased().contains("content-type: application/x-ndjson"), "\(head)")
        #expect(head.lowercased().contains("transfer-encoding: chunked"), "\(head)")

        let cases: [(action: String, path: String, subsystem: String, devName: String?)] = [
            ("add", Self.usbDevice, "usb", "/dev/bus/usb/002/002"),
            ("change", Self.sdb, "block", nil),
            ("remove", Self.eno1, "net", "eno1"),
            ("unbind", Self.xhci, "pci", "0000:00:14.0"),
            ("bind", Self.xhci, "pci", "0000:00:14.0"),
        ]
        for (action, path, subsystem, devName) in cases {
            let before = stream.lines.count
            let sent = Date()
            try Self.inject("\(action) \(path)", control: control)
            let devPath = String(path.dropFirst("/sys".count))
            let event = stream.line(after: before, timeout: 3) { $0["DevPath"] as? String == devPath && $0["Action"] as? String == action }
            let elapsed = Date().timeIntervalSince(sent)
            let found = try #require(event, "\(action) \(path) never arrived: \(stream.lines)")
            #expect(elapsed < 1, "\(action) \(path) took \(elapsed) s")
            #expect(found["NodeName"] as? String == "fixture-node")
            #expect(found["Subsystem"] as? String == subsystem)
            if let devName { #expect(found["DevName"] as? String == devName, "\(found)") }
            // RFC 3339, UTC, nanoseconds; and the time the agent received it.
            let time = try #require(found["Time"] as? String)
            #expect(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"#, options: .regularExpression) != nil, "\(time)")
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let stamped = try #require(formatter.date(from: String(time.prefix(23)) + "Z"))
            #expect(abs(stamped.timeIntervalSince(sent)) < 1, "\(time) vs \(sent)")
        }
        // The fleet's stream is read apart from the node's: wait for its last event too
        // (the node's stream is the one timed above), then compare them all.
        _ = fleet.line(after: 0, timeout: 3) { $0["Action"] as? String == "bind" }
        #expect(fleet.lines.compactMap { $0?["Action"] as? String } == cases.map(\.action), "\(fleet.lines)")
        #expect(fleet.lines.allSatisfy { $0?["NodeName"] as? String == "fixture-node" })
        let usb = try #require(stream.line(timeout: 0) { $0["Subsystem"] as? String == "usb" })
        #expect(usb["VendorID"] as? String == nil || usb["VendorID"] as? String == "0781", "\(usb)")

        // A USB interface is not an inventory item: its events are not streamed.
        let before = stream.lines.count
        try Self.inject("change \(Self.usbInterface)", control: control)
        try Self.inject("change \(Self.sdb)", control: control)
        #expect(stream.line(after: before, timeout: 3) { $0["DevPath"] as? String == String(Self.sdb.dropFirst(4)) } != nil)
        #expect(stream.lines.dropFirst(before).allSatisfy { $0?["DevPath"] as? String != String(Self.usbInterface.dropFirst(4)) }, "\(stream.lines)")
        #expect(stream.lines.allSatisfy { $0 != nil }, "a line that is not a JSON object")
    }

    @Test("a client that goes away frees its subscription; the cache's stays")
    func clientGoingAwayFreesTheSubscription() throws {
        let (agent, control) = try Self.agent()
        defer { agent.stop() }
        let key = SigningKey()
        let first = try EventStreamClient(agent.baseURL + "/v2/host/events", key: key)
        let second = try EventStreamClient(agent.baseURL + "/v2/host/events", key: key)
        #expect(first.head() != nil && second.head() != nil)
        try Self.inject("change \(Self.sdb)", control: control)
        #expect(first.line(timeout: 3) { $0["Action"] as? String == "change" } != nil)
        #expect(second.line(timeout: 3) { $0["Action"] as? String == "change" } != nil)
        first.stop()
        // The agent hears of it at its next write at the latest; a change makes one.
        try Self.inject("change \(Self.sdb)", control: control)
        #expect(second.line(after: 1, timeout: 3) { $0["Action"] as? String == "change" } != nil)
        var counts: [Int] = []
        for _ in 0..<100 where counts.isEmpty {
            usleep(30_000)
            counts = Self.closedStreamCounts(agent)
        }
        // The cache and the second stream are left.
        #expect(counts == [2], "\(agent.logLines().suffix(5))")
        second.stop()
        try Self.inject("change \(Self.sdb)", control: control)
        for _ in 0..<100 where counts.count < 2 {
            usleep(30_000)
            counts = Self.closedStreamCounts(agent)
        }
        #expect(counts == [2, 1], "\(agent.logLines().suffix(5))")
        // And the inventory still answers, its cache still subscribed.
        #expect(try Curl.request("GET", agent.baseURL + "/v2/host/info", headers: key.headers()).status == 200)
    }

    @Test("a client that stops reading costs bounded memory and gets an overflow end, not a stalled agent")
    func slowReaderStaysBounded() throws {
        let (agent, control) = try Self.agent()
        defer { agent.stop() }
        let key = SigningKey()
        // Reads the head, then nothing, with a small receive buffer and small segments:
        // the kernel's buffers fill after a few hundred lines, then the agent's.
        let slow = try Command.spawn("/usr/bin/python3", ["-c", Self.stalledClient, String(agent.port)] + key.headers().flatMap { [$0.key, $0.value] })
        defer { slow.stop() }
        usleep(500_000)
        let before = try agent.memory().current
        var counts: [Int] = []
        var sent = 0
        // 100 at a time (a second's worth: umockdev cannot go faster on a loaded
        // machine), no more once the stream has ended.
        while counts.isEmpty && sent < 8_000 {
            try Self.inject("burst 100 change \(Self.sdb)", control: control)
            sent += 100
            for _ in 0..<25 where counts.isEmpty {
                usleep(50_000)
                counts = Self.closedStreamCounts(agent)
            }
        }
        #expect(counts == [1], "the slow stream was not ended after \(sent) events: \(agent.logLines().suffix(5))")
        let after = try agent.memory().current
        #expect(after - before < 32 * 1024, "resident memory grew by \(after - before) KiB")
        // A new client is served as before.
        let fresh = try EventStreamClient(agent.baseURL + "/v2/host/events", key: key)
        #expect(fresh.head() != nil)
        try Self.inject("add \(Self.usbDevice)", control: control)
        #expect(fresh.line(timeout: 3) { $0["Action"] as? String == "add" } != nil)
    }

    /// A TLS client that asks for the stream, then never reads: `python3 -c stalledClient PORT NAME VALUE...`.
    static let stalledClient = """
        import socket, ssl, sys, time
        port, headers = int(sys.argv[1]), sys.argv[2:]
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Small segments: the agent's send buffer, sized by segment size, stays small.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        raw.connect(("127.0.0.1", port))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        tls = context.wrap_socket(raw)
        lines = ["GET /v2/host/events HTTP/1.1", "Host: 127.0.0.1"] + [f"{headers[i]}: {headers[i + 1]}" for i in range(0, len(headers), 2)]
        tls.sendall(("\\r\\n".join(lines) + "\\r\\n\\r\\n").encode())
        time.sleep(600)
        """

    @Test("without host management: 503, and no stream")
    func disabled() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            for path in ["/v2/host/events", "/v2/cluster/host/events"] {
                let reply = try agent.request("GET", path, key: key)
                #expect(reply.status == 503, "\(path)")
                #expect((try reply.json() as? [String: String])?["message"] == "Host management capability disabled")
            }
        }
    }

    @Test("unsigned: 403")
    func unsigned() throws {
        let (agent, _) = try Self.agent()
        defer { agent.stop() }
        let reply = try Curl.request("GET", agent.baseURL + "/v2/host/events")
        #expect(reply.status == 403)
    }
}
