import Foundation
import Testing
import TestCommands

/// `GET /v2/host/events?since=`: what this node kept of its hardware events before the
/// stream began, then the live ones, in a umockdev testbed whose uevents the test makes.
/// The times asked for are the ones the agent itself wrote on earlier lines.
@Suite("GET /v2/host/events?since=")
struct HostEventsHistoryTests {
    /// `Time` (RFC 3339, nine decimals, UTC) as `since` takes it, plus `plus` nanoseconds;
    /// Python's arithmetic is the independent reading.
    static func since(_ time: String, plus: Int = 0) throws -> String {
        let script = """
            import calendar, sys, time
            text = sys.argv[1]
            seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
            total = seconds * 10**9 + int(text[20:29]) + int(sys.argv[2])
            print(f"{total // 10**9}.{total % 10**9:09d}")
            """
        let result = try Command.run("python3", ["-c", script, time, String(plus)])
        guard result.status == 0 else { throw TestSetupError(result.errorOutput) }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("events from before the stream come first, from the time asked; a time before the agent started is said to be incomplete; then live events")
    func replay() throws {
        let (agent, control) = try HostEventsTests.agent(nodeName: "history-node")
        defer { agent.stop() }
        let key = SigningKey()
        // A live stream records what the agent wrote for each event, and when.
        let live = try EventStreamClient(agent.baseURL + "/v2/host/events", key: key)
        #expect(live.head()?.hasPrefix("HTTP/1.1 200") == true)
        let orders = ["change \(HostEventsTests.sdb)", "add \(HostEventsTests.usbDevice)", "remove \(HostEventsTests.eno1)"]
        for order in orders {
            let before = live.lines.count
            try HostEventsTests.inject(order, control: control)
            #expect(live.line(after: before, timeout: 3) { _ in true } != nil, "\(order) never arrived")
        }
        let recorded = live.lines.compactMap { $0 }
        #expect(recorded.map { "\($0["Action"] ?? "") /sys\($0["DevPath"] ?? "")" } == orders)
        let times = recorded.compactMap { $0["Time"] as? String }

        // From just after the first event: the other two, exactly as written live, no notice.
        let fromSecond = try EventStreamClient(agent.baseURL + "/v2/host/events?since=" + (try Self.since(times[0], plus: 1)), key: key)
        #expect(fromSecond.line(timeout: 3) { $0["Action"] as? String == "remove" } != nil, "\(fromSecond.lines)")
        let replayed = fromSecond.lines.compactMap { $0 }
        #expect(replayed.count == 2, "\(replayed)")
        #expect(NSArray(array: replayed).isEqual(to: Array(recorded.dropFirst())), "\(replayed) against \(recorded)")

        // From the first event's own time: all three (since is inclusive).
        let fromFirst = try EventStreamClient(agent.baseURL + "/v2/host/events?since=" + (try Self.since(times[0])), key: key)
        #expect(fromFirst.line(timeout: 3) { $0["Action"] as? String == "remove" } != nil)
        #expect(NSArray(array: fromFirst.lines.compactMap { $0 }).isEqual(to: recorded))

        // From 1970: before the agent started, so the stream says some may be missing,
        // then the three.
        let fromEpoch = try EventStreamClient(agent.baseURL + "/v2/host/events?since=0", key: key)
        #expect(fromEpoch.line(timeout: 3) { $0["Action"] as? String == "remove" } != nil)
        let all = fromEpoch.lines.compactMap { $0 }
        #expect(all.first?["Action"] as? String == "history-incomplete", "\(all)")
        #expect(all.first?["NodeName"] as? String == "history-node")
        #expect(NSArray(array: Array(all.dropFirst())).isEqual(to: recorded))

        // From the future: nothing kept, and then a live event on every stream.
        let future = try EventStreamClient(agent.baseURL + "/v2/host/events?since=4102444800", key: key)
        #expect(future.head()?.hasPrefix("HTTP/1.1 200") == true)
        try HostEventsTests.inject("bind \(HostEventsTests.xhci)", control: control)
        for stream in [future, fromSecond, fromFirst, fromEpoch, live] {
            #expect(stream.line(timeout: 3) { $0["Action"] as? String == "bind" } != nil)
        }
        #expect(future.lines.compactMap { $0 }.map { $0["Action"] as? String } == ["bind"], "\(future.lines)")
        #expect(fromSecond.lines.count == 3 && fromFirst.lines.count == 4 && fromEpoch.lines.count == 5)
    }

    @Test("a since that is not a Unix time in seconds is a 400 naming it, on this node's stream and the fleet's", arguments: [
        "abc", "-1", "1e9", "1.", ".5", "1.1234567890", "99999999999", "1764467000,5", "",
    ])
    func badSince(value: String) throws {
        let (agent, _) = try HostEventsTests.agent()
        defer { agent.stop() }
        let key = SigningKey()
        for path in ["/v2/host/events", "/v2/cluster/host/events"] {
            let reply = try Curl.request("GET", agent.baseURL + path + "?since=" + value, headers: key.headers())
            #expect(reply.status == 400, "\(path) since=\(value): \(reply.status) \(reply.text)")
            #expect(reply.text.contains("since"), "\(reply.text)")
        }
    }
}
