import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy

/// `deckhand health`: whether the agent on this host answers, and whether its engine
/// does, for a Docker `HEALTHCHECK`. Unsigned on purpose: the agent's public `/ping`
/// and the engine's own `/_ping` on its socket, which the checking process (run in the
/// agent's container) reaches as the agent does (socket or TCP, with its TLS).
package struct HealthCheck: Sendable {
    var agentHost: String
    var agentPort: Int
    var engine: Result<UpstreamTransport, EngineTLSError>
    var engineTLS: EngineTLS?
    var engineAddress: EngineAddress
    var timeout: TimeAmount

    /// Where the agent of these settings is reached from its own host: a wildcard
    /// listener on loopback, a specific one on its address.
    package init(configuration: AgentConfiguration, timeout: TimeAmount) {
        // Loopback IPv4 reaches both a dual-stack `::` and the `0.0.0.0` it falls back to.
        switch configuration.host {
        case nil, "0.0.0.0": agentHost = "127.0.0.1"
        case "::": agentHost = "::1"
        case let host?: agentHost = host
        }
        agentPort = configuration.port
        engine = Result { () throws(EngineTLSError) in try configuration.engineTransport() }
        engineTLS = configuration.engineTLS
        engineAddress = configuration.engine
        self.timeout = timeout
    }

    /// One line, and whether all is well.
    package func run(on eventLoop: EventLoop) async -> (healthy: Bool, line: String) {
        let agentName = HostPort.join(agentHost, agentPort)
        let agent: UpstreamPool
        do {
            agent = UpstreamPool(transport: .tls(host: agentHost, port: agentPort, context: try UpstreamTransport.peerTLSContext()))
        } catch {
            return (false, "unhealthy: no TLS client: \(error)")
        }
        let engine: UpstreamPool
        switch self.engine {
        case .success(let transport): engine = UpstreamPool(transport: transport)
        case .failure(let error): return (false, "unhealthy: \(error)")
        }
        defer {
            agent.closeIdle()
            engine.closeIdle()
        }
        var ping = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ping")
        ping.headers.add(name: "Host", value: "localhost")
        do {
            let answer = try await agent.collect(ping, on: eventLoop, limit: 4096, timeout: timeout).get()
            guard answer.head.status == .noContent, answer.head.headers.contains(name: "Portainer-Agent") else {
                return (false, "unhealthy: agent \(agentName) answered /ping with \(answer.head.status.code), not a Portainer agent's 204")
            }
        } catch CollectError.tooLarge {
            return (false, "unhealthy: agent \(agentName) answered /ping with a body, not a Portainer agent's 204")
        } catch {
            return (false, "unhealthy: agent \(agentName) did not answer /ping: \(error)")
        }
        if let refusal = EngineSocketAccess.refusal(engine: engineAddress) {
            return (false, "unhealthy: \(refusal)")
        }
        var enginePing = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/_ping")
        enginePing.headers.add(name: "Host", value: "docker")
        do {
            let answer = try await engine.collect(enginePing, on: eventLoop, limit: 4096, timeout: timeout).get()
            guard answer.head.status == .ok else {
                return (false, "unhealthy: engine \(engine.transport) answered /_ping with \(answer.head.status.code)")
            }
        } catch {
            if let engineTLS, let problem = EngineTLSCheck.problem(error, engine: "\(engine.transport)", tls: engineTLS) {
                return (false, "unhealthy: \(EngineTLSError(problem))")
            }
            return (false, "unhealthy: engine \(engine.transport) did not answer /_ping: \(error)")
        }
        return (true, "healthy: agent \(agentName) and engine \(engine.transport) answer")
    }
}
