import Agent
import ArgumentParser
import Crypto
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy

/// `deckhand status`: asks a running agent (signed, as Portainer) what it believes
/// about its engine and its cluster (`GET /v2/cluster/status`), as a table or JSON.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what an agent believes about its engine and its cluster's members.",
        discussion: "Signs with --key as Portainer does (the agent must accept that key: its AGENT_SECRET, or the key it associated)."
    )

    @Option(name: .long, help: "The agent's host:port (default 127.0.0.1:9001; IPv6 in brackets).")
    var address = "127.0.0.1:9001"
    @Option(name: .long, help: "The private key (PEM) to sign with.")
    var key: String
    @OptionGroup var secrets: ClientSecret
    @Option(name: .long, help: "Ask the agent of this node, through the one at --address.")
    var node: String?
    @Flag(name: .long, help: "Print the agent's JSON answer as it is.")
    var json = false

    func run() async throws {
        let secret = try secrets.resolved()
        let body: [UInt8]
        do {
            body = try await SignedClient(address: address, keyPath: key, secret: secret).get("/v2/cluster/status", node: node, limit: 4 << 20)
        } catch {
            if case .badAddress = error { throw ValidationError(error.description) }
            if case .badKey = error { throw ValidationError(error.description) }
            print("deckhand status: " + TerminalText.safe("\(error)"))
            throw ExitCode(1)
        }
        if json {
            guard let text = TerminalText.json(body) else {
                print("deckhand status: \(address) answered something that is not JSON")
                throw ExitCode(1)
            }
            print(text)
            return
        }
        guard let status = try? JSONDecoder().decode(GetClusterStatus.Status.self, from: Data(body)) else {
            print("deckhand status: \(address) answered something that is not a status")
            throw ExitCode(1)
        }
        print(TerminalText.safe(status.table(now: Int64(time(nil)))), terminator: "")
    }
}

/// `GET /v2/cluster/status`, as `deckhand status` prints it for a person.
extension GetClusterStatus.Status {
    func table(now: Int64) -> String {
        func ms(_ value: Double?) -> String { value.map { "\((($0 * 10).rounded() / 10)) ms" } ?? "-" }
        let engine = self.Engine
        var text = "\(NodeName ?? "?") (\(NodeRole ?? "no swarm role")), deckhand \(Version)\n"
        text += "engine: " + (engine.Answers ? "answers (\(ms(engine.RoundTripMs)))" : "DOES NOT ANSWER")
        if engine.SwarmMember == false { text += ", not an active Swarm node" }
        if let error = engine.Error { text += " — \(error)" }
        text += "\n"
        guard let cluster = self.Cluster else { return text + "cluster: none (standalone engine)\n" }
        text += "cluster: \(cluster.Address), probed every \(cluster.ProbeIntervalSeconds) s\n"
        var rows = [["ADDRESS", "NODE", "ROLE", "VERSION", "MEMBER", "LAST ANSWER", "ROUND TRIP", "FAILURES", "PROBLEM"]]
        for member in cluster.Members {
            rows.append([
                member.address, member.nodeName ?? "-", member.role ?? "-", member.version ?? "-", member.isMember ? "yes" : "no",
                member.lastSuccess.map { "\(max(0, now - $0)) s ago" } ?? "never", ms(member.roundTripMilliseconds), String(member.consecutiveFailures),
                member.dropped.map { "dropped: \($0)" } ?? member.lastError ?? "-",
            ])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            text += row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ") + "\n"
        }
        return text
    }
}
