import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Proxy
import Testing
import TestCommands

/// Limits that protect the agent, on the real binary.
@Suite("Connection and header limits")
struct LimitsTests {
    /// A TLS connection that sends whatever it is told, byte by byte if need be.
    final class RawConnection {
        let channel: Channel
        private let receivedBytes = NIOLockedValueBox(ByteBuffer())

        /// `reads: false` is a client that never reads what it is sent: the smallest
        /// receive buffer, and no reads, so the server's answers stay on its side.
        /// `source` is the local address to connect from (another loopback address is
        /// another source to the agent's connection limit).
        init(port: Int, reads: Bool = true, source: String? = nil) throws {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            let context = try NIOSSLContext(configuration: configuration)
            let received = receivedBytes
            var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            if !reads {
                bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: 4096)
            }
            if let source {
                bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0))
            }
            channel = try bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                    }
                }
                .connect(host: "127.0.0.1", port: port).wait()
            if !reads {
                // Past the TLS handshake and one answer (which need reads), stop reading for good.
                try send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                let deadline = Date().addingTimeInterval(10)
                while !self.received.contains("\r\n\r\n"), Date() < deadline { usleep(10_000) }
                try channel.setOption(.autoRead, value: false).wait()
            }
        }

        /// Writes `text` without waiting for it to be sent (a client that does not read
        /// may find the server no longer reading either).
        func sendWithoutWaiting(_ text: String) {
            channel.writeAndFlush(channel.allocator.buffer(string: text), promise: nil)
        }

        /// What the server has sent so far.
        var received: String { receivedBytes.withLockedValue { String(buffer: $0) } }

        private final class Collector: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            let received: NIOLockedValueBox<ByteBuffer>
            init(received: NIOLockedValueBox<ByteBuffer>) { self.received = received }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                var bytes = unwrapInboundIn(data)
                received.withLockedValue { $0.writeBuffer(&bytes) }
                context.fireChannelRead(data)  // for handlers a test adds behind this one
            }
        }

        func send(_ text: String) throws {
            try channel.writeAndFlush(channel.allocator.buffer(string: text)).wait()
        }

        /// Writes `bytes` in one write (one TLS record).
        func send(bytes: [UInt8]) throws {
            try channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).wait()
        }

        /// Waits up to `seconds` for what the server sent to satisfy `done`; what it sent.
        @discardableResult
        func wait(atMost seconds: Double, until done: (String) -> Bool) -> String {
            let deadline = Date().addingTimeInterval(seconds)
            while !done(received), Date() < deadline { usleep(10_000) }
            return received
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
        // Not even a TLS handshake: a bare TCP connection.
        let bare = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(bare) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(agent.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(bare, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        // Slowloris: a header byte every 100 ms keeps the connection busy, not alive.
        let trickle = try RawConnection(port: agent.port)
        try trickle.send("GET /ping HTTP/1.1\r\n")
        let trickleStarted = Date()
        var trickleCut = false
        while !trickleCut && Date().timeIntervalSince(trickleStarted) < 4 {
            trickleCut = (try? trickle.send("X")) == nil || !trickle.channel.isActive
            usleep(100_000)
        }
        #expect(trickleCut)
        #expect(slow.closedByServer(within: 3))
        #expect(silent.closedByServer(within: 3))
        var byte: UInt8 = 0
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(bare, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(recv(bare, &byte, 1, 0) <= 0)  // end of stream (or reset), not the 3 s timeout
        // A client that sends its request in time is served.
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }

    @Test("a refused request's huge body is not read to its end: the agent answers, then hangs up")
    func hugeRefusedBody() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let connection = try RawConnection(port: agent.port)
        // Unsigned: refused at its head, so nobody wants the gigabyte announced.
        try connection.send("POST /containers/create HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
        let chunk = String(repeating: "a", count: 64 << 10)
        var sent = 0
        while sent < 256 << 20, (try? connection.send(chunk)) != nil { sent += chunk.utf8.count }
        // The agent drops 1 MiB; the rest of what got through sat in socket buffers.
        #expect(sent < 64 << 20, "\(sent >> 20) MiB of the body sent and the agent still reads")
        #expect(connection.closedByServer(within: 3))
        #expect(connection.received.hasPrefix("HTTP/1.1 403"), "received: \(connection.received.prefix(200))")
        // The agent goes on serving.
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

    @Test("at the limit a new connection is closed on arrival when every slot is signed on, and accepted again once one ends")
    func connectionLimit() throws {
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_MAX_CONNECTIONS": "3", "LOG_LEVEL": "WARN", "LOG_MODE": "JSON",
        ])
        defer { agent.stop() }
        usleep(300_000)  // let the start-up probes' connections close
        let key = SigningKey()
        var held = try (0..<3).map { _ in try RawConnection(port: agent.port) }
        for connection in held { try connection.signOn(key) }
        #expect(held.allSatisfy { !$0.closedByServer(within: 0.3) })
        // Accepted and closed at once: the TLS handshake fails (35), neither refused nor timed out.
        #expect(try Curl.exitStatus(agent.baseURL + "/ping") == 35)
        // The operator is told why, once, with the setting to raise.
        let warnings = agent.logLines().filter { $0.contains("connection limit reached") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("every connection is authenticated") == true)
        #expect(warnings.first?.contains("\"setting\":\"DECKHAND_MAX_CONNECTIONS\"") == true)
        #expect(warnings.first?.contains("\"limit\":\"3\"") == true)
        // The signed-on connections go on serving.
        try held[0].signOn(key, answers: 2)
        held.removeLast()
        usleep(300_000)
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }
}

extension LimitsTests.RawConnection {
    /// Sends a signed `GET /_ping` and waits for its answer (the `answers`-th on this
    /// connection): from then on the agent counts the connection as Portainer's.
    func signOn(_ key: SigningKey, answers: Int = 1) throws {
        let signature = key.headers().map { "\($0.key): \($0.value)\r\n" }.joined()
        try send("GET /_ping HTTP/1.1\r\nHost: x\r\n\(signature)\r\n")
        let deadline = Date().addingTimeInterval(10)
        while received.components(separatedBy: "HTTP/1.1 200 OK").count - 1 < answers, Date() < deadline { usleep(10_000) }
        guard received.components(separatedBy: "HTTP/1.1 200 OK").count - 1 >= answers else {
            throw TestSetupError("no answer to a signed /_ping: \(received.prefix(300))")
        }
    }
}

@Suite("Memory after load")
struct MemoryAfterLoadTests {
    @Test("after a burst of 400 connections the agent's memory comes back near its idle level")
    func memoryComesBack() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        #expect(try Curl.request("GET", agent.baseURL + "/containers/json", headers: key.headers()).status == 200)
        let idle = try agent.memory().current
        let signature = key.headers().map { "\($0.key): \($0.value)\r\n" }.joined()
        var burst = try (0..<400).map { _ in try LimitsTests.RawConnection(port: agent.port) }
        for connection in burst {
            try connection.send("GET /containers/json HTTP/1.1\r\nHost: x\r\n\(signature)\r\n")
        }
        usleep(1_000_000)
        let loaded = try agent.memory().current
        burst.removeAll()
        // The agent checks every 10 s whether a burst is over.
        var after = loaded
        let deadline = Date().addingTimeInterval(30)
        while after > idle + 6 * 1024 && Date() < deadline {
            usleep(500_000)
            after = try agent.memory().current
        }
        let summary = "idle \(idle) KiB, loaded \(loaded) KiB, after \(after) KiB"
        #expect(loaded > idle + 8 * 1024, "the burst should have cost memory: \(summary)")
        #expect(after <= idle + 6 * 1024, "\(summary)")
    }
}

@Suite("Upstream pool")
struct UpstreamPoolTests {
    @Test("an idle engine connection is closed after the idle timeout, one in use is not")
    func idleConnectionsExpire() throws {
        let timeout = 2.0
        let pool = UpstreamPool(transport: .unixSocket(path: try TestEngine.socket), idleTimeout: .milliseconds(Int64(timeout * 1000)))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let first = try pool.acquire(on: loop).wait()
        let inUse = try pool.acquire(on: loop).wait()
        pool.release(first, reusable: true)
        #expect(pool.idleCount == 1)
        usleep(1_000_000)
        // Borrowed and given back: its idle spell starts again, and the first spell's
        // timer leaves it alone.
        #expect(try pool.acquire(on: loop).wait() === first)
        pool.release(first, reusable: true)
        let released = Date()
        usleep(1_400_000)
        // Now past the first spell's timer, and before the second's.
        if Date().timeIntervalSince(released) < timeout - 0.1 {
            #expect(first.isActive && pool.idleCount == 1)
        } else {
            // Never pass without checking: a machine that overslept says so.
            Issue.record("overslept past the idle timeout: could not check that the connection stays open before it")
        }
        while Date().timeIntervalSince(released) < timeout + 1 { usleep(50_000) }
        #expect(pool.idleCount == 0)
        #expect(!first.isActive)
        #expect(inUse.isActive)
        inUse.close(promise: nil)
    }

    @Test("collect works when called off the event loop (as at start, from the async command)")
    func collectFromAnyThread() throws {
        let pool = UpstreamPool(transport: .unixSocket(path: try TestEngine.socket))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/_ping", headers: ["Host": "docker"])
        let response = try pool.collect(head, on: loop, limit: 1024, timeout: .seconds(10)).wait()
        #expect(response.head.status == .ok)
        #expect(String(buffer: response.body) == "OK")
        pool.closeIdle()
    }

    /// The real engine frames `/version` by its length and `/info` in chunks: a
    /// status-only collect takes the first in bytes and has the second decoded.
    @Test("a status-only collect has the body a decoded one has, from the real engine, by length or chunked; a too large answer is refused")
    func statusOnlyCollect() throws {
        let pool = UpstreamPool(transport: .unixSocket(path: try TestEngine.socket))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        func get(_ uri: String, limit: Int = 1 << 20, statusOnly: Bool) throws -> CollectedResponse {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["Host": "docker"])
            return try pool.collect(head, on: loop, limit: limit, timeout: .seconds(10), statusOnly: statusOnly).wait()
        }
        let version = (decoded: try get("/version", statusOnly: false), raw: try get("/version", statusOnly: true))
        #expect(version.decoded.head.headers.first(name: "Content-Length") == String(version.decoded.body.readableBytes))
        #expect(version.raw.head.status == .ok && version.raw.head.headers.isEmpty)
        #expect(version.raw.body == version.decoded.body)

        let info = (decoded: try get("/info", statusOnly: false), raw: try get("/info", statusOnly: true))
        #expect(info.decoded.head.headers.first(name: "Transfer-Encoding") == "chunked")
        #expect(info.raw.head.status == .ok && info.raw.head.headers.isEmpty)
        // `/info` tells the time: compare what stays.
        let ids = try [info.decoded, info.raw].map { try JSONSerialization.jsonObject(with: Data($0.body.readableBytesView)) as? [String: Any] }.map { $0?["ID"] as? String }
        #expect(ids[0] != nil && ids[0] == ids[1])

        let idleBefore = pool.idleCount
        #expect(throws: CollectError.self) { try get("/version", limit: 100, statusOnly: true) }
        #expect(pool.idleCount == idleBefore - 1, "a refused answer's connection is closed, not pooled again")
        pool.closeIdle()
    }

    /// The engine's `/events` never ends: a collected exchange of it ends only by its time.
    @Test("a collected exchange that gets no whole answer ends at its timeout, or when cancelled, and its connection is not kept")
    func collectTimeoutAndCancel() throws {
        let pool = UpstreamPool(transport: .unixSocket(path: try TestEngine.socket))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/events", headers: ["Host": "docker"])
        let started = Date()
        #expect {
            try pool.collect(head, on: loop, limit: 1 << 20, timeout: .milliseconds(300)).wait()
        } throws: { error in
            if case .timedOut = error as? CollectError { return true }
            return false
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.3 && elapsed < 3, "took \(elapsed)s")
        #expect(pool.idleCount == 0)

        // Started without a timer, ended by its owner: `done` once, with the owner's error.
        struct Stop: Error {}
        let outcome = try loop.submit { () -> (calls: Int, stopped: Bool, finished: Bool) in
            var results: [Result<CollectedResponse, Error>] = []
            let exchange = pool.startCollecting(head, on: loop, limit: 1 << 20) { results.append($0) }
            exchange.cancel(Stop())
            exchange.cancel(Stop())
            let stopped = results.count == 1 && { if case .failure(let error) = results[0] { return error is Stop } else { return false } }()
            return (results.count, stopped, exchange.isFinished)
        }.wait()
        #expect(outcome.calls == 1 && outcome.stopped && outcome.finished)
        // Cancelled before its connection came: that unused connection is pooled, then
        // a real answer still comes on the pool's connections.
        let ping = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/_ping", headers: ["Host": "docker"])
        #expect(String(buffer: try pool.collect(ping, on: loop, limit: 1024, timeout: .seconds(10)).wait().body) == "OK")
        pool.closeIdle()
    }

    @Test("idle connections expire one by one, each its own timeout after its own release")
    func idleConnectionsExpireInOrder() throws {
        let timeout = 2.0
        let pool = UpstreamPool(transport: .unixSocket(path: try TestEngine.socket), idleTimeout: .milliseconds(Int64(timeout * 1000)))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let channels = try (0..<3).map { _ in try pool.acquire(on: loop).wait() }
        var released: [Date] = []
        for channel in channels {
            pool.release(channel, reusable: true)
            released.append(Date())
            usleep(700_000)
        }
        // One sweep serves the loop: it closes the oldest at its deadline and leaves
        // the others, whose deadlines come 0.7 and 1.4 s later.
        for (index, channel) in channels.enumerated() {
            while Date().timeIntervalSince(released[index]) < timeout + 0.4 { usleep(20_000) }
            #expect(!channel.isActive, "connection \(index) still open \(Date().timeIntervalSince(released[index])) s after its release")
            if index + 1 < channels.count {
                if Date().timeIntervalSince(released[index + 1]) < timeout - 0.1 {
                    #expect(channels[index + 1].isActive, "connection \(index + 1) closed before its timeout")
                } else {
                    Issue.record("overslept past connection \(index + 1)'s timeout: could not check it stays open before it")
                }
            }
        }
        #expect(pool.idleCount == 0)
    }
}
