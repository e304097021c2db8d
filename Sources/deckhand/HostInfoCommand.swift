import Agent
import ArgumentParser
import FoundationEssentials
import Hardware

/// `deckhand host-info`: the `GET /host/info` answer printed without starting the
/// server, as JSON (what Portainer receives) or, with `--table`, for a person. With
/// `--address`, the fleet's instead, asked of a running agent
/// (`GET /v2/cluster/host/info`, signed with `--key`).
struct HostInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host-info",
        abstract: "Print this host's hardware, or with --address every node's through a running agent."
    )

    @Flag(name: .long, help: "Print readable tables instead of JSON.")
    var table = false

    @Option(
        name: .long,
        help: "The host's root as this process sees it (default: /host in a container that has it, else /).")
    var hostRoot: String?

    @Option(name: .long, help: "Ask the agent at host:port for every node's hardware (IPv6 in brackets).")
    var address: String?
    @Option(name: .long, help: "With --address: the private key (PEM) to sign with, as Portainer does.")
    var key: String?
    @OptionGroup var secrets: ClientSecret
    @Option(name: .long, help: "With --address: this node only.")
    var node: String?
    @Option(name: .long, help: "With --address: Docker-style filters, a JSON object of string lists, applied on each node.")
    var filters: String?

    func validate() throws {
        if address == nil, key != nil || secrets.isGiven || node != nil || filters != nil {
            throw ValidationError("--key, --secret, --secret-file, --node and --filters ask a running agent: give its --address")
        }
        if address != nil, key == nil { throw ValidationError("--address needs --key, the private key to sign with") }
        if address != nil, hostRoot != nil { throw ValidationError("--host-root reads this host; --address asks an agent: not both") }
    }

    func run() async throws {
        guard let address, let key else {
            let root = hostRoot.map { HostRoot(path: $0) } ?? HostRoot.detect()
            let hostInfo = try HardwareInventory(hostRoot: root).collect()
            // Device strings are the devices' own (a USB descriptor, a filesystem label, a
            // FUSE source): printed inertly, as an agent's answer is.
            if table {
                print(TerminalText.safe(HostInfoTable(hostInfo).render()), terminator: "")
            } else {
                let json = try AgentJSON.encode(hostInfo, pretty: true)
                print(TerminalText.json(json) ?? TerminalText.safe(String(decoding: json, as: UTF8.self)))
            }
            return
        }
        var path = "/v2/cluster/host/info"
        if let filters { path += "?filters=" + Self.percentEncoded(filters) }
        let secret = try secrets.resolved()
        let body: [UInt8]
        do {
            body = try await SignedClient(address: address, keyPath: key, secret: secret).get(path, node: node)
        } catch {
            if case .badAddress = error { throw ValidationError(error.description) }
            if case .badKey = error { throw ValidationError(error.description) }
            print("deckhand host-info: " + TerminalText.safe("\(error)"))
            throw ExitCode(1)
        }
        guard table else {
            guard let text = TerminalText.json(body) else {
                print("deckhand host-info: \(address) answered something that is not JSON")
                throw ExitCode(1)
            }
            return print(text)
        }
        guard let fleet = try? JSONDecoder().decode(Fleet.self, from: Data(body)) else {
            print("deckhand host-info: \(address) answered something that is not a fleet inventory")
            throw ExitCode(1)
        }
        // Every node's inventory is what that node (or whoever answered for it) says.
        for entry in fleet.Nodes {
            print(TerminalText.safe("== \(entry.NodeName) (\(entry.Role)) =="))
            print(TerminalText.safe(HostInfoTable(entry.HostInfo).render()))
        }
        if !fleet.UnreachableNodes.isEmpty {
            print(TerminalText.safe("unreachable: \(fleet.UnreachableNodes.joined(separator: ", "))"))
        }
    }

    /// `GET /v2/cluster/host/info`'s answer.
    struct Fleet: Decodable {
        struct Entry: Decodable {
            var NodeName: String
            var Role: String
            var HostInfo: Hardware.HostInfo
        }
        var Nodes: [Entry]
        var UnreachableNodes: [String]
    }

    /// A query value: everything but unreserved characters percent-encoded.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
