import Foundation
import NIOCore
import Testing
import TestCommands

/// A member that answers what no agent would (a compromised or broken peer), against
/// the real agent binary: the agent names it and goes on serving the others.
@Suite("Members that answer what no agent would")
struct HostileMemberTests {
    /// An agent whose engine is a stand-in Swarm manager with no containers (a Python
    /// socket server, `HostileEngine`), and whose cluster is itself and `impostor`, once
    /// the impostor (claiming `name`) is among its members; `key` is the one it trusts.
    static func agent(
        with impostor: ImpostorAgent, named name: String, engine: HostileEngine, key: SigningKey, hostManagement: Bool = false,
        memberTimeout: String = "30", environment: [String: String] = [:]
    ) throws -> AgentProcess {
        impostor.claim(#"{"NodeName":"\#(name)","NodeRole":"worker","Version":"1.0"}"#)
        let port = try AgentProcess.freePort()
        let agent = try AgentProcess(port: port, environment: [
            "DECKHAND_ENGINE_SOCKET": engine.socket,
            "AGENT_CLUSTER_ADDR": "127.0.0.1:\(port),\(impostor.seed)",
            "DECKHAND_PROBE_INTERVAL": "0.3",
            "DECKHAND_MEMBER_TIMEOUT": memberTimeout,
            "CAP_HOST_MANAGEMENT": hostManagement ? "1" : "0",
        ].merging(environment) { $1 })
        let deadline = Date().addingTimeInterval(15)
        var status = ""
        while Date() < deadline {
            status = try Curl.request("GET", agent.baseURL + "/v2/cluster/status", headers: key.headers()).text
            let cluster = (try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["Cluster"] as? [String: Any]
            let members = cluster?["Members"] as? [[String: Any]] ?? []
            if members.contains(where: { $0["NodeName"] as? String == name && $0["Member"] as? Bool == true }) { return agent }
            usleep(200_000)
        }
        agent.stop()
        throw TestSetupError("the impostor never became a member: \(status)")
    }

    /// A list within the member body limit (64 MiB) whose merge would be far larger:
    /// 33 million scalars under a 100-byte node name (the merged answer's size was
    /// computed past 4 GiB, which a ByteBuffer traps on), or 22 million `{}` (a gigabyte
    /// of tags). Before, the first killed the agent and the second took over 1 GB.
    @Test("a member's list that would merge into gigabytes is left out and named; the agent stays up and small",
          arguments: [("0", String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 36)), ("{}", "huge-member")])
    func listThatWouldMergeIntoGigabytes(item: String, name: String) throws {
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        let count = ((64 << 20) - 1) / (item.utf8.count + 1)
        let list = "[" + String(repeating: item + ",", count: count - 1) + item + "]"
        #expect(list.utf8.count <= 64 << 20)
        impostor.answer("/containers/json", with: ByteBuffer(string: list))
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo, "/containers/json": #"[{"Id":"local"}]"#])
        defer { engine.stop() }
        let key = SigningKey()
        let agent = try Self.agent(with: impostor, named: name, engine: engine, key: key)
        defer { agent.stop() }

        let reply = try Curl.request("GET", agent.baseURL + "/v1.41/containers/json?all=1", headers: key.headers())
        #expect(reply.status == 200, "\(reply.text.prefix(300))")
        #expect(reply.headers["x-portaineragent-unreachable-nodes"]?.contains(name) == true, "\(reply.headers) \(impostor.forwarded.map(\.uri))")
        // The agent's own engine's list is all there is.
        let merged = try #require(try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [[String: Any]])
        #expect(merged.map { $0["Id"] as? String } == ["local"])
        #expect((merged.first?["Portainer"] as? [String: [String: String]])?["Agent"]?["NodeName"] == "stand-in")
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
        let peak = try agent.memory().peak
        #expect(peak < 512 * 1024, "peak RSS \(peak / 1024) MiB")
    }

    /// The fleet's host info asked of the impostor alone: before, its answer went to the
    /// client as it came (any status, any body, called JSON); now only an error that is
    /// a JSON object is, as agents answer errors, and anything else names it unreachable.
    @Test("a member asked alone for its host info: a 200 that is not JSON is no answer, and is named")
    func hostInfoThatIsNotJSON() throws {
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        impostor.answer("/host/info", with: ByteBuffer(string: "not json"))
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo])
        defer { engine.stop() }
        let key = SigningKey()
        let agent = try Self.agent(with: impostor, named: "plain-member", engine: engine, key: key, hostManagement: true)
        defer { agent.stop() }
        let filters = #"{"node":["plain-member"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let reply = try Curl.request("GET", agent.baseURL + "/v2/cluster/host/info?filters=\(filters)", headers: key.headers())
        #expect(impostor.forwarded.contains { $0.uri.contains("/host/info") }, "the impostor was not asked")
        #expect(reply.status == 200, "\(reply.text)")
        let document = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [String: Any]
        #expect((document?["Nodes"] as? [Any])?.isEmpty == true, "\(reply.text)")
        #expect(document?["UnreachableNodes"] as? [String] == ["plain-member"], "\(reply.text)")
        #expect(reply.headers["x-portaineragent-unreachable-nodes"] == "plain-member")
    }

    /// A member's 304 stands for the answer it gave before, under that tag, and for
    /// nothing else: unasked, it is no answer; asked, it is that earlier (checked)
    /// answer; a tag that is not a plain quoted string is never sent back.
    @Test("a member's 304 is only ever its own earlier answer; one not asked for is no answer")
    func notModifiedFromAMember() throws {
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo])
        defer { engine.stop() }
        let key = SigningKey()
        // Every request asks the member here: no watches (`MemberWatches`), whose polls
        // would stand in for some of them (tested below).
        let agent = try Self.agent(
            with: impostor, named: "tagged-member", engine: engine, key: key, hostManagement: true, environment: ["DECKHAND_MEMBER_WATCH": "0"])
        defer { agent.stop() }
        let filters = #"{"node":["tagged-member"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        func fleet() throws -> (nodes: [[String: Any]], unreachable: [String]?, conditions: String?) {
            let before = impostor.forwarded.count
            let reply = try Curl.request("GET", agent.baseURL + "/v2/cluster/host/info?filters=\(filters)", headers: key.headers())
            #expect(reply.status == 200, "\(reply.text)")
            let document = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [String: Any]
            let asked = impostor.forwarded.dropFirst(before).filter { $0.uri.contains("/host/info") }
            #expect(asked.count == 1, "the impostor was asked \(asked.count) times")
            let conditions = asked.last?.headers.first { $0.0.lowercased() == "if-none-match" }?.1
            return (document?["Nodes"] as? [[String: Any]] ?? [], document?["UnreachableNodes"] as? [String], conditions)
        }

        // Not asked conditionally: a 304 stands for nothing.
        impostor.answer("/host/info", with: ByteBuffer(), status: .notModified, headers: [("ETag", #""v1""#)])
        var reply = try fleet()
        #expect(reply.conditions == nil)
        #expect(reply.nodes.isEmpty)
        #expect(reply.unreachable == ["tagged-member"])

        // An answer with a tag is sent back conditionally, and its 304 is that answer.
        impostor.answer("/host/info", with: ByteBuffer(string: #"{"Mine":1}"#), headers: [("ETag", #""v1""#)])
        reply = try fleet()
        #expect(reply.conditions == nil)
        #expect(reply.nodes.first?["HostInfo"] as? [String: Int] == ["Mine": 1])
        impostor.answer("/host/info", with: ByteBuffer(), status: .notModified, headers: [("ETag", #""v1""#)])
        reply = try fleet()
        #expect(reply.conditions == #""v1""#)
        #expect(reply.unreachable == [])
        #expect(reply.nodes.first?["HostInfo"] as? [String: Int] == ["Mine": 1])

        // An answer that is not one JSON object is not kept, whatever its tag: the next
        // request is not conditional, so a 304 to it is no answer again.
        impostor.answer("/host/info", with: ByteBuffer(string: #"{"Mine":2}]"#), headers: [("ETag", #""v2""#)])
        reply = try fleet()
        #expect(reply.conditions == #""v1""#)
        #expect(reply.unreachable == ["tagged-member"])
        impostor.answer("/host/info", with: ByteBuffer(string: #"{"Mine":3}"#), headers: [("ETag", "v3 unquoted")])
        reply = try fleet()
        #expect(reply.nodes.first?["HostInfo"] as? [String: Int] == ["Mine": 3])
        impostor.answer("/host/info", with: ByteBuffer(), status: .notModified, headers: [("ETag", "v3 unquoted")])
        reply = try fleet()
        #expect(reply.conditions == nil)
        #expect(reply.unreachable == ["tagged-member"])
    }

    /// A watched member (`MemberWatches`) that does not hold its polls is polled once per
    /// wait, not in a loop; while its answer is vouched for, fleet requests do not ask
    /// it; and a poll answered with something that is not one JSON object ends the watch,
    /// so the next request asks it and names it. Counted by what the member received.
    @Test("a watched member that answers polls at once is polled once per wait; a bad poll answer ends the watch and the member is named")
    func watchedMember() throws {
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo])
        defer { engine.stop() }
        let key = SigningKey()
        let agent = try Self.agent(with: impostor, named: "watched-member", engine: engine, key: key, hostManagement: true, memberTimeout: "2")
        defer { agent.stop() }
        let filters = #"{"node":["watched-member"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        func fleet() throws -> (mine: Int?, unreachable: [String]?) {
            let reply = try Curl.request("GET", agent.baseURL + "/v2/cluster/host/info?filters=\(filters)", headers: key.headers())
            #expect(reply.status == 200, "\(reply.text)")
            let document = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [String: Any]
            let nodes = document?["Nodes"] as? [[String: Any]] ?? []
            return ((nodes.first?["HostInfo"] as? [String: Int])?["Mine"], document?["UnreachableNodes"] as? [String])
        }
        func hostInfoRequests() -> [ImpostorAgent.Received] { impostor.forwarded.filter { $0.uri.contains("/host/info") } }
        func isPoll(_ request: ImpostorAgent.Received) -> Bool {
            request.headers.contains { $0.0.lowercased() == "prefer" && $0.1 == "wait=2" }
                && request.headers.contains { $0.0.lowercased() == "if-none-match" && $0.1 == #""v1""# }
        }

        // Always the same 200, whatever is asked: it does not hold, nor answer 304.
        impostor.answer("/host/info", with: ByteBuffer(string: #"{"Mine":1}"#), headers: [("ETag", #""v1""#)])
        // Asked twice: watched from then on.
        #expect(try fleet().mine == 1)
        #expect(try fleet().mine == 1)
        let watchedFrom = hostInfoRequests().count
        let started = Date()
        for _ in 0..<20 {
            let answer = try fleet()
            #expect(answer.mine == 1 && answer.unreachable == [], "\(answer)")
        }
        Thread.sleep(forTimeInterval: max(0, 4 - Date().timeIntervalSince(started)))
        let seconds = Date().timeIntervalSince(started)
        let since = hostInfoRequests().dropFirst(watchedFrom)
        // Every request it had in that time was a poll, about one per 2 s (not 20 requests, nor a poll per 250 ms).
        #expect(since.allSatisfy(isPoll), "\(since.filter { !isPoll($0) }.count) of \(since.count) requests were not polls")
        #expect(since.count >= 1 && Double(since.count) <= seconds / 2 + 1.5, "\(since.count) polls in \(seconds)s")

        // Its answer turns into something that is not one object: the next poll ends the
        // watch, and the request after that asks it, and names it. Never served.
        impostor.answer("/host/info", with: ByteBuffer(string: #"{"Mine":2}]"#), headers: [("ETag", #""v2""#)])
        let turned = Date()
        var answer = try fleet()
        while answer.unreachable != ["watched-member"], Date().timeIntervalSince(turned) < 6 {
            #expect(answer.mine == 1, "\(answer)")
            Thread.sleep(forTimeInterval: 0.2)
            answer = try fleet()
        }
        #expect(answer.unreachable == ["watched-member"], "\(answer)")
        #expect(answer.mine == nil)
        #expect(Date().timeIntervalSince(turned) < 2 + 1 + 1.5, "named after \(Date().timeIntervalSince(turned))s")
        #expect(!hostInfoRequests().dropFirst(watchedFrom).allSatisfy(isPoll), "asked directly again")
    }

    /// A GET list with a body (curl -d with -X GET): the fan-out sends each node the
    /// head alone, so it must not announce a body. Before, the engine (which, as Go's
    /// server, reads a request's body before answering) waited for it until the member
    /// timeout, and the list was a 502 naming this node.
    @Test("a list asked for with a body: every node is asked without it, and answers")
    func listAskedWithABody() throws {
        let impostor = try ImpostorAgent(host: "127.0.0.1")
        defer { impostor.stop() }
        impostor.answer("/containers/json", with: ByteBuffer(string: #"[{"Id":"remote"}]"#))
        let engine = try HostileEngine(answers: ["/info": HostileEngine.swarmManagerInfo, "/containers/json": #"[{"Id":"local"}]"#])
        defer { engine.stop() }
        let key = SigningKey()
        let agent = try Self.agent(with: impostor, named: "member", engine: engine, key: key, memberTimeout: "3")
        defer { agent.stop() }
        let reply = try Curl.request("GET", agent.baseURL + "/v1.41/containers/json", headers: key.headers(), body: Data(#"{"x":1}"#.utf8))
        #expect(reply.status == 200, "\(reply.text)")
        let merged = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [[String: Any]]
        #expect(Set(merged?.compactMap { $0["Id"] as? String } ?? []) == ["local", "remote"], "\(reply.text)")
        #expect(reply.headers["x-portaineragent-unreachable-nodes"] == nil)
        let asked = impostor.forwarded.first { $0.uri.contains("/containers/json") }
        #expect(asked != nil && !asked!.headers.contains { ["content-length", "transfer-encoding"].contains($0.0.lowercased()) }, "\(asked?.headers ?? [])")
    }
}
