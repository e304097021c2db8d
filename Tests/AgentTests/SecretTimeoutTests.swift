import Foundation
import Testing
@testable import Agent

@Suite("AGENT_SECRET_TIMEOUT")
struct SecretTimeoutTests {
    // 5 s: long enough that a loaded machine still gets the first request in before it
    // (1 s was not), short enough to wait out.
    @Test("with nobody associated in time, every signed request is refused until restart")
    func closesWhenUnused() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET_TIMEOUT": "5s"])
        defer { agent.stop() }
        usleep(5_600_000)
        let reply = try Curl.request("GET", agent.baseURL + "/_ping", headers: SigningKey().headers())
        #expect(reply.status == 403)
        #expect((try reply.json() as? [String: String])?["message"] == "No Portainer associated with this agent within AGENT_SECRET_TIMEOUT")
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }

    @Test("an association made in time keeps working after the timeout")
    func associatedInTime() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_SECRET_TIMEOUT": "5s"])
        defer { agent.stop() }
        let key = SigningKey()
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers()).status == 200)
        usleep(5_600_000)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: key.headers()).status == 200)
        #expect(try Curl.request("GET", agent.baseURL + "/_ping", headers: SigningKey().headers()).status == 403)
    }

    @Test("durations in Go's syntax", arguments: [("72h", 259_200.0), ("1h30m", 5400.0), ("90s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0)])
    func durations(text: String, seconds: Double) {
        #expect(AgentConfiguration.parseDuration(text) == seconds)
    }

    @Test("bad durations are refused", arguments: ["", "72", "h", "5d", "-1s", "1s2"])
    func badDurations(text: String) {
        #expect(AgentConfiguration.parseDuration(text) == nil)
    }
}
