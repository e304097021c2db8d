import Foundation
import Glibc
import NIOCore
import Testing
@testable import Agent
import TestCommands

/// `DECKHAND_ALLOWED_CLIENTS` (issue 17): the matching checked against Python's
/// `ipaddress` module, and the real agent closing connections from elsewhere before a
/// byte is exchanged.
@Suite("The client allowlist")
struct ClientAllowlistTests {
    /// Asks Python's `ipaddress` whether each address is in its network. An IPv4-mapped
    /// IPv6 address (or network) is taken as the IPv4 one it carries, as the agent does
    /// for clients of a dual-stack socket.
    static func pythonVerdicts(_ pairs: [(network: String, address: String)]) throws -> [Bool] {
        let script = """
        import ipaddress, sys
        def unmapped(a):
            return a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a
        out = []
        for line in sys.stdin.read().splitlines():
            net, addr = line.split(" ")
            n = ipaddress.ip_network(net, strict=True)
            if n.version == 6 and n.network_address.ipv4_mapped and n.prefixlen >= 96:
                n = ipaddress.ip_network(f"{n.network_address.ipv4_mapped}/{n.prefixlen - 96}")
            a = unmapped(ipaddress.ip_address(addr))
            out.append("1" if a.version == n.version and a in n else "0")
        print("".join(out))
        """
        let input = pairs.map { "\($0.network) \($0.address)" }.joined(separator: "\n")
        let result = try Command.run("python3", ["-c", script], input: Data(input.utf8))
        guard result.status == 0 else { throw TestSetupError("python3 ipaddress: \(result.errorOutput)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines).map { $0 == "1" }
    }

    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func text(_ bytes: [UInt8]) -> String {
        bytes.count == 4
            ? bytes.map(String.init).joined(separator: ".")
            : stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }

    @Test("which addresses a network holds, as Python's ipaddress says: IPv4, IPv6, mapped, at every prefix edge")
    func matchesPython() throws {
        var random = Generator(state: 17)
        var pairs: [(network: String, address: String)] = []
        for index in 0..<400 {
            let width = index % 3 == 0 ? 16 : 4
            var network = (0..<width).map { _ in UInt8.random(in: 0...255, using: &random) }
            let prefix = Int.random(in: 0...(width * 8), using: &random)
            for bit in prefix..<(width * 8) { network[bit / 8] &= ~(0x80 >> UInt8(bit % 8)) }
            let written = "\(Self.text(network))/\(prefix)"
            for trial in 0..<8 {
                var address = network
                // Host bits at random: inside.
                for bit in prefix..<(width * 8) where Bool.random(using: &random) { address[bit / 8] |= 0x80 >> UInt8(bit % 8) }
                // Then, for half of them, one network bit flipped: just outside, at every depth.
                if trial % 2 == 1, prefix > 0 {
                    let bit = trial == 1 ? prefix - 1 : Int.random(in: 0..<prefix, using: &random)
                    address[bit / 8] ^= 0x80 >> UInt8(bit % 8)
                }
                var addressText = Self.text(address)
                // IPv4 clients of a dual-stack socket arrive mapped.
                if width == 4, trial >= 6 { addressText = "::ffff:" + addressText }
                pairs.append((written, addressText))
            }
        }
        // The other family never matches, and /0 holds its whole family.
        pairs += [("0.0.0.0/0", "::1"), ("::/0", "10.1.2.3"), ("0.0.0.0/0", "255.255.255.255"), ("::/0", "ffff::1"),
                  ("::ffff:10.0.0.0/104", "10.200.0.1"), ("::ffff:10.0.0.0/104", "11.0.0.1"), ("10.0.0.0/8", "::ffff:10.9.9.9")]
        let expected = try Self.pythonVerdicts(pairs)
        try #require(expected.count == pairs.count)
        var wrong: [String] = []
        for (pair, verdict) in zip(pairs, expected) {
            let allowlist = try #require(ClientAllowlist(pair.network), "\(pair.network) refused")
            let bytes = try #require(ClientAllowlist.addressBytes(pair.address))
            if allowlist.allows(bytes) != verdict { wrong.append("\(pair.address) in \(pair.network): python says \(verdict)") }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(10))")
        #expect(expected.contains(true) && expected.contains(false))
    }

    @Test("entries that are not an address or a network are refused (and Python's ipaddress refuses them too)",
          arguments: ["10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "portainer.example",
                      "10.0.0", "1.2.3.4/", "/8", "1.2.3.4/8/8", "10.0.0.0/0x8", "１.２.３.４", "1.2.3.4.5", "::1/1000"])
    func malformed(entry: String) throws {
        #expect(ClientAllowlist(entry) == nil)
        #expect(ClientAllowlist("192.168.1.1, \(entry)") == nil, "one bad entry spoils the list")
        let python = try Command.run("python3", ["-c", "import ipaddress, sys; ipaddress.ip_network(sys.argv[1], strict=True)", entry])
        #expect(python.status != 0, "python's ipaddress accepts \(entry)")
    }

    /// Connects from `source` (any 127/8 address is the loopback's), sends nothing, and
    /// returns how many bytes came before the connection ended (nil: no end within 3 s).
    static func bytesBeforeEnd(from source: String, port: Int) throws -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else { throw TestSetupError("cannot connect from \(source): errno \(errno)") }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { total += count; continue }
            if count == 0 || errno == ECONNRESET { return total }
            return nil  // the time-out: the connection did not end
        }
    }

    @Test("a connection from an address not on the list ends before a byte is exchanged; listed ones, IPv4 and IPv6, are served")
    func realConnections() throws {
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "AGENT_HOST": "::", "LOG_LEVEL": "WARN",
            "DECKHAND_ALLOWED_CLIENTS": "127.0.0.1, 127.0.0.4/30,::1",
        ])
        defer { agent.stop() }
        // Listed: a TLS handshake and an answer, from each family.
        #expect(try Curl.request("GET", agent.baseURL + "/ping", extra: ["--interface", "127.0.0.5"]).status == 204)
        #expect(try Curl.request("GET", "https://[::1]:\(agent.port)/ping", extra: ["-g"]).status == 204)
        // Not listed: closed at once, no TLS alert, no HTTP answer, not a byte.
        for source in ["127.0.0.3", "127.0.0.8", "127.0.0.200"] {
            #expect(try Self.bytesBeforeEnd(from: source, port: agent.port) == 0, "from \(source)")
        }
        // A flood of refusals is logged about once a second, each line counting them.
        let started = Date()
        for _ in 0..<40 { _ = try Self.bytesBeforeEnd(from: "127.0.0.9", port: agent.port) }
        let seconds = Date().timeIntervalSince(started)
        usleep(200_000)
        let lines = agent.logLines().filter { $0.contains("not in DECKHAND_ALLOWED_CLIENTS") }
        #expect(!lines.isEmpty)
        #expect(Double(lines.count) <= seconds + 2, "\(lines.count) lines in \(seconds) s")
        // Without an allowlist the same silent client is kept, waiting for its TLS
        // handshake (until the header timeout): the ends above are the allowlist's doing.
        let open = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { open.stop() }
        #expect(try Self.bytesBeforeEnd(from: "127.0.0.3", port: open.port) == nil)
    }

    @Test("the connection limit's sources are IPv4 addresses and IPv6 /64 networks, as Python's ipaddress writes them")
    func connectionSources() throws {
        let addresses = [
            "2001:db8:1:2::1", "2001:db8:1:2:ffff:ee:dd:9", "2001:db8:1:3::1", "fd00::7", "fd00:0:0:0:8000::1",
            "10.1.2.3", "::ffff:10.1.2.3", "10.1.2.4", "127.0.0.1", "::1",
        ]
        // Python's own: an IPv4 address (a mapped one unmapped), else the /64 it is in.
        let script = """
        import ipaddress, sys
        for line in sys.stdin.read().splitlines():
            a = ipaddress.ip_address(line)
            if a.version == 6 and a.ipv4_mapped:
                a = a.ipv4_mapped
            print(a if a.version == 4 else ipaddress.ip_network(f"{a}/64", strict=False).compressed)
        """
        let result = try Command.run("python3", ["-c", script], input: Data(addresses.joined(separator: "\n").utf8))
        try #require(result.status == 0, "python3: \(result.errorOutput)")
        let expected = result.output.split(separator: "\n").map(String.init)
        try #require(expected.count == addresses.count)
        let sources = try addresses.map { ConnectionLimit.Source(try SocketAddress(ipAddress: $0, port: 9001)) }
        for (index, source) in sources.enumerated() {
            #expect(source.description == expected[index], "\(addresses[index])")
            for (other, otherSource) in sources.enumerated() {
                #expect((source == otherSource) == (expected[index] == expected[other]), "\(addresses[index]) and \(addresses[other])")
            }
        }
    }
}
