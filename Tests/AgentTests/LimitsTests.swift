import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// Limits that protect the agent, on the real binary.
@Suite("Connection and header limits")
struct LimitsTests {
    /// A TLS connection that sends whatever it is told, byte by byte if need be.
    final class RawConnection {
        let channel: Channel

        init(port: Int) throws {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            let context = try NIOSSLContext(configuration: configuration)
            channel = try ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                }
                .connect(host: "127.0.0.1", port: port).wait()
        }

        func send(_ text: String) throws {
            try channel.writeAndFlush(channel.allocator.buffer(string: text)).wait()
        }

        /// Whether the server closed the connection within `seconds`.
        func closedByServer(within seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if !channel.isActive { return true }
                usleep(20_000)
            }
            return !channel.isActive
        }

        deinit { try? channel.close().wait() }
    }

    @Test("a client that never finishes its headers is cut off after the header timeout")
    func slowHeaders() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_HEADER_TIMEOUT": "1"])
        defer { agent.stop() }
        let slow = try RawConnection(port: agent.port)
        try slow.send("GET /ping HTTP/1.1\r\nHost: x\r\n")
        let silent = try RawConnection(port: agent.port)
        #expect(slow.closedByServer(within: 3))
        #expect(silent.closedByServer(within: 3))
        // A client that sends its request in time is served.
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }

    @Test("oversized request headers get 431 and a JSON error")
    func oversizedHeaders() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let reply = try Curl.request("GET", agent.baseURL + "/ping", headers: ["X-Filler": String(repeating: "a", count: 100_000)])
        #expect(reply.status == 431)
        #expect((try reply.json() as? [String: String])?["message"] == "Request headers too large")
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }

    @Test("past the connection limit new connections are closed, and accepted again once one ends")
    func connectionLimit() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_MAX_CONNECTIONS": "3"])
        defer { agent.stop() }
        usleep(300_000)  // let the start-up probes' connections close
        var held = try (0..<3).map { _ in try RawConnection(port: agent.port) }
        #expect(held.allSatisfy { !$0.closedByServer(within: 0.3) })
        #expect((try? Curl.request("GET", agent.baseURL + "/ping", extra: ["--max-time", "3"])) == nil)
        held.removeLast()
        usleep(300_000)
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }
}
