import ASCIIText
import NIOCore
import NIOHTTP1
import Proxy
import Testing
@testable import Agent

/// Numbers and ids from clients, peers and the environment, judged in ASCII and read
/// without a trap (issue 13, findings 5 and 7).
@Suite("Numbers and ids from the wire")
struct WireNumberTests {
    @Test("decimal digits saturate at Int64.max instead of trapping")
    func saturatingDecimal() {
        #expect(ASCII.saturatingDecimal(Array("9223372036854775807".utf8)) == .max)
        #expect(ASCII.saturatingDecimal(Array("9223372036854775808".utf8)) == .max)
        #expect(ASCII.saturatingDecimal(Array(String(repeating: "9", count: 400).utf8)) == .max)
        #expect(ASCII.saturatingDecimal(Array("0009".utf8)) == 9)
        for invalid in ["", "-1", "+1", " 1", "1 ", "１", "٣"] {
            #expect(ASCII.saturatingDecimal(Array(invalid.utf8)) == nil, "\(invalid)")
        }
    }

    static func consoleHead(_ uri: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        ])
    }

    @Test("an exec id is 64 lowercase ASCII hex digits, as the engine makes them")
    func execIDs() throws {
        let valid = "4f3a9c" + String(repeating: "0", count: 58)
        #expect(try ConsoleRequest(kind: .exec, head: Self.consoleHead("/websocket/exec?id=\(valid)")).id == valid)
        let fullWidth = "ａｂｃ" // full-width a, b, c: hex digits to Character.isHexDigit
        for invalid in [fullWidth, "%EF%BD%81%EF%BD%82%EF%BD%83", "4f3a9c", valid.uppercased(), valid + "0", String(valid.dropLast()) + "g",
                        String(valid.dropLast()) + "%D9%A3"] {
            #expect(throws: AgentError.self, "\(invalid)") {
                try ConsoleRequest(kind: .exec, head: Self.consoleHead("/websocket/exec?id=\(invalid)"))
            }
        }
    }

    @Test("a container id or name is Docker's restricted name, in ASCII")
    func containerReferences() throws {
        for valid in ["abc", "4f3a9c", "my_container.1-a", String(repeating: "a", count: 255)] {
            #expect(try ConsoleRequest(kind: .attach, head: Self.consoleHead("/websocket/attach?id=\(valid)")).id == valid)
        }
        for invalid in ["%EF%BD%81bc", "caf%C3%A9", "..", "-a", "_a", "a%2Fb", "a%00", String(repeating: "a", count: 256)] {
            #expect(throws: AgentError.self, "\(invalid)") {
                try ConsoleRequest(kind: .attach, head: Self.consoleHead("/websocket/attach?id=\(invalid)"))
            }
        }
    }

    @Test("a node name is ASCII too")
    func nodeNames() {
        #expect(AgentConfiguration.isNodeName("node-1.example_b"))
        #expect(!AgentConfiguration.isNodeName("ｎode"))
        #expect(!AgentConfiguration.isNodeName("nöde"))
    }

    @Test("a cluster address is ASCII host names and ports in range")
    func clusterAddresses() {
        #expect(ClusterAddress("tasks.agent") != nil)
        #expect(ClusterAddress("10.0.0.1:9001,[::1]:9001") != nil)
        for invalid in ["ｔａｓｋｓ.agent", "tâsks.agent", "host:99999999999999999999", "host:0", "[::1]:65536"] {
            #expect(ClusterAddress(invalid) == nil, "\(invalid)")
        }
    }

    @Test("timeouts too long for a 64-bit count of nanoseconds stop start-up with the variable's name", arguments: [
        ("AGENT_SECRET_TIMEOUT", "99999999999999999999h"),
        ("AGENT_SECRET_TIMEOUT", "2562048h"),
        ("AGENT_SECRET_TIMEOUT", "1" + String(repeating: "0", count: 400) + "s"),
        ("DECKHAND_HEADER_TIMEOUT", "1e300"),
        ("DECKHAND_PROBE_INTERVAL", "nan"),
        ("DECKHAND_MEMBER_TIMEOUT", "inf"),
        ("AGENT_PORT", "99999999999999999999"),
        ("DECKHAND_MAX_CONNECTIONS", "9223372036854775808"),
        ("DECKHAND_MEMBER_WATCH", "11"),
        ("DECKHAND_MEMBER_WATCH", "-1"),
        ("DECKHAND_MEMBER_WATCH", "1.5"),
        ("DECKHAND_MEMBER_WATCH", "99999999999999999999"),
    ])
    func outOfRangeSettings(variable: String, value: String) throws {
        let setting = try #require(Setting.allCases.first { $0.environmentName == variable })
        #expect(throws: ConfigurationError.self) {
            try AgentConfiguration.resolve(flags: [:], environment: [variable: value])
        }
        #expect(throws: ConfigurationError.self) {
            try AgentConfiguration.resolve(flags: [setting: value], environment: [:])
        }
    }

    @Test("a member watch of 0 to 10 whole seconds is taken; 2 without one")
    func memberWatch() throws {
        #expect(try AgentConfiguration.resolve(flags: [:], environment: [:]).memberWatch == 2)
        #expect(try AgentConfiguration.resolve(flags: [:], environment: ["DECKHAND_MEMBER_WATCH": "0"]).memberWatch == 0)
        #expect(try AgentConfiguration.resolve(flags: [.memberWatch: "10"], environment: [:]).memberWatch == 10)
    }

    @Test("the longest timeout Go accepts is taken, and converts to nanoseconds without a trap")
    func longestTimeout() throws {
        let configuration = try AgentConfiguration.resolve(flags: [:], environment: ["AGENT_SECRET_TIMEOUT": "2562047h"])
        #expect(configuration.associationTimeout == 2_562_047 * 3600)
        #expect(TimeAmount.fromSeconds(configuration.associationTimeout).nanoseconds == 2_562_047 * 3600 * 1_000_000_000)
        #expect(TimeAmount.fromSeconds(.infinity).nanoseconds == 0)
        #expect(TimeAmount.fromSeconds(1e300).nanoseconds > 9_000_000_000_000_000_000)
    }
}
