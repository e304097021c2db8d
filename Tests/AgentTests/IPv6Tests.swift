import Foundation
import Proxy
import Testing
import TestCommands
@testable import Agent

/// IPv6 (issue 18.4): how addresses are written in the settings, and where the agent
/// listens.
@Suite("IPv6 addresses and listening")
struct IPv6Tests {
    @Test("host[:port] entries: IPv6 only in brackets, ports digits from 1 to 65535", arguments: [
        ("[fd64:6468::11]:9001", "fd64:6468::11", 9001),
        ("[::1]", "::1", nil),
        ("[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1),
        ("tasks.agent", "tasks.agent", nil),
        ("10.99.0.11:65535", "10.99.0.11", 65535),
    ] as [(String, String, Int?)])
    func validEntries(text: String, host: String, port: Int?) throws {
        let parsed = try HostPort(parsing: text)
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        // Printed back as written: the brackets survive a round trip.
        #expect(parsed.description == text)
    }

    @Test("ambiguous or broken IPv6 entries are refused, each with its reason", arguments: [
        ("::1:9001", HostPortError.ipv6WithoutBrackets("::1:9001")),
        ("fd64:6468::11", .ipv6WithoutBrackets("fd64:6468::11")),
        ("[::1", .unclosedBracket("[::1")),
        ("[::1]9001", .unclosedBracket("[::1]9001")),
        ("[fe80::1%eth0]:9001", .notIPv6("[fe80::1%eth0]:9001")),
        ("[10.0.0.1]:9001", .notIPv6("[10.0.0.1]:9001")),
        ("[node1]:9001", .notIPv6("[node1]:9001")),
        ("[::1]:", .badPort("[::1]:")),
        ("[::1]:0", .badPort("[::1]:0")),
        ("[::1]:65536", .badPort("[::1]:65536")),
        ("[::1]:+9001", .badPort("[::1]:+9001")),
        ("[::1]:99999999999999999999", .badPort("[::1]:99999999999999999999")),
        ("node1:9001x", .badPort("node1:9001x")),
        ("", .empty),
    ])
    func invalidEntries(text: String, error: HostPortError) {
        #expect(throws: error) { try HostPort(parsing: text) }
    }

    @Test("AGENT_CLUSTER_ADDR: IPv6 members in brackets; an ambiguous one stops start-up naming the fix")
    func clusterAddresses() throws {
        let address = try #require(ClusterAddress("[fd64:6468::11]:9001, [fd64:6468::12],10.99.0.13:9001"))
        #expect(address.seeds.map(\.host) == ["fd64:6468::11", "fd64:6468::12", "10.99.0.13"])
        #expect(address.seeds.map(\.port) == [9001, nil, 9001])
        #expect(address.description == "[fd64:6468::11]:9001,[fd64:6468::12],10.99.0.13:9001")
        for invalid in ["::1:9001", "[::1", "[::1]:9001,", "tasks.agent,,node2"] {
            #expect(ClusterAddress(invalid) == nil, "\(invalid)")
            #expect(throws: ConfigurationError.self, "\(invalid)") {
                try AgentConfiguration.resolve(flags: [.clusterAddress: invalid], environment: [:])
            }
        }
        let result = try Command.run(try BuiltProducts.deckhand, ["serve"], environment: ["AGENT_CLUSTER_ADDR": "fd64:6468::11:9001"], timeout: 20)
        #expect(result.status == 2)
        let lines = result.errorOutput.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("AGENT_CLUSTER_ADDR") == true)
        #expect(lines.first?.contains("needs brackets") == true, "\(result.errorOutput)")
    }

    @Test("a tcp:// engine and host-info's --address read IPv6 the same strict way")
    func otherAddresses() {
        #expect(EngineAddress("tcp://[fd64:6468::1]:2376") == .tcp(host: "fd64:6468::1", port: 2376))
        #expect(EngineAddress("tcp://[fd64:6468::1]:2376")?.description == "tcp://[fd64:6468::1]:2376")
        #expect(EngineAddress("tcp://fd64:6468::1:2376") == nil)
        #expect(SignedClient.split("[::1]:9001")! == ("::1", 9001))
        #expect(SignedClient.split("::1:9001") == nil)
        #expect(SignedClient.split("[::1]") == nil)
    }

    @Test("AGENT_HOST: IPv4, IPv6 bare or in brackets, or a name; the default is left to the listener (dual stack)")
    func listenHosts() throws {
        #expect(try AgentConfiguration.resolve(flags: [:], environment: [:]).host == nil)
        for (given, bound) in [("::", "::"), ("[::]", "::"), ("fd64:6468::11", "fd64:6468::11"), ("[::1]", "::1"), ("0.0.0.0", "0.0.0.0"), ("node1", "node1")] {
            #expect(try AgentConfiguration.resolve(flags: [.host: given], environment: [:]).host == bound, "\(given)")
        }
        for invalid in ["[::1]:9001", "10.0.0.1:9001", "[node1]", "::1]", "a b", "[fe80::1%eth0]"] {
            #expect(throws: ConfigurationError.self, "\(invalid)") {
                try AgentConfiguration.resolve(flags: [.host: invalid], environment: [:])
            }
        }
    }

    /// Whether something answers `/ping` at `url` (a refused connection is no).
    static func answers(_ url: String) -> Bool {
        (try? Curl.request("GET", url + "/ping", extra: ["-g", "--max-time", "3"]))?.status == 204
    }

    @Test("by default the agent listens on :: and answers on 127.0.0.1 and ::1 alike, and says so")
    func defaultDualStack() throws {
        let agent = try AgentProcess(host: nil, environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "LOG_LEVEL": "INFO"])
        defer { agent.stop() }
        #expect(Self.answers("https://127.0.0.1:\(agent.port)"))
        #expect(Self.answers("https://[::1]:\(agent.port)"))
        let listening = agent.logLines().first { $0.contains("listening") } ?? ""
        #expect(listening.contains("[::]:\(agent.port)"), "\(listening)")
    }

    @Test("where the kernel has no IPv6 the default falls back to 0.0.0.0, and the log says so")
    func fallbackWithoutIPv6() throws {
        // A kernel booted with ipv6.disable=1 refuses every AF_INET6 socket with
        // EAFNOSUPPORT; a preloaded socket() does exactly that, and nothing else.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("no-ipv6-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("no_ipv6.c")
        try """
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <errno.h>
        #include <sys/socket.h>
        int socket(int domain, int type, int protocol) {
            if (domain == AF_INET6) { errno = EAFNOSUPPORT; return -1; }
            int (*real)(int, int, int) = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
            return real(domain, type, protocol);
        }
        """.write(to: source, atomically: true, encoding: .utf8)
        let library = folder.appendingPathComponent("no_ipv6.so").path
        let compiled = try Command.run("cc", ["-shared", "-fPIC", "-o", library, source.path, "-ldl"])
        try #require(compiled.status == 0, "\(compiled.errorOutput)")
        let agent = try AgentProcess(host: nil, environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "LOG_LEVEL": "INFO", "LD_PRELOAD": library,
        ])
        defer { agent.stop() }
        #expect(Self.answers("https://127.0.0.1:\(agent.port)"))
        #expect(!Self.answers("https://[::1]:\(agent.port)"))
        let log = agent.logLines()
        #expect(log.contains { $0.contains("IPv6 is not available on this machine: listening on IPv4 only") }, "\(log)")
        #expect(log.contains { $0.contains("listening") && $0.contains("address=0.0.0.0:\(agent.port)") }, "\(log)")
    }

    @Test("on ::, the engine's API is served to IPv6 and IPv4 clients alike")
    func explicitWildcard() throws {
        let agent = try AgentProcess(host: "::", environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        for base in ["https://[::1]:\(agent.port)", "https://127.0.0.1:\(agent.port)"] {
            let reply = try Curl.request("GET", base + "/v1.41/version", headers: key.headers(), extra: ["-g"])
            #expect(reply.status == 200, "\(base): \(reply.text)")
            #expect((try reply.json() as? [String: Any])?["ApiVersion"] != nil, "\(base)")
        }
    }

    @Test("on a given IPv6 address the agent answers there only", arguments: ["::1", "[::1]"])
    func givenAddress(host: String) throws {
        let agent = try AgentProcess(host: host, environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        #expect(Self.answers("https://[::1]:\(agent.port)"))
        #expect(!Self.answers("https://127.0.0.1:\(agent.port)"))
    }
}
