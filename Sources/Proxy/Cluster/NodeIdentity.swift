import FoundationEssentials
import NIOCore
import NIOHTTP1

/// What the local engine says about the node this agent runs on.
public struct NodeIdentity: Sendable, Equatable {
    /// This node: its name and its role.
    public var node: ClusterNode
    /// The engine is an active Swarm node.
    public var isSwarmMember: Bool

    public init(name: String, isSwarmMember: Bool, isManager: Bool) {
        self.node = ClusterNode(name: name, isManager: isManager)
        self.isSwarmMember = isSwarmMember
    }

    public var name: String { node.name }
    public var isManager: Bool { node.isManager }
    public var role: String { node.role }

    private struct EngineInfo: Decodable {
        struct SwarmInfo: Decodable {
            var LocalNodeState: String?
            var ControlAvailable: Bool?
        }
        var Name: String
        var Swarm: SwarmInfo?
    }

    /// Asks the engine (`GET /info`).
    public static func fetch(from engine: UpstreamPool, on eventLoop: EventLoop, timeout: TimeAmount = .seconds(5)) -> EventLoopFuture<NodeIdentity> {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/info", headers: ["Host": "docker"])
        return engine.collect(head, on: eventLoop, limit: 4 << 20, timeout: timeout).flatMapThrowing { response in
            guard response.head.status == .ok else { throw ClusterError.engineAnswered(response.head.status.code) }
            return try NodeIdentity(engineInfo: response.body.readableBytesView)
        }
    }

    /// Reads the engine's `GET /info` answer (its body, JSON): only the fields above.
    public init(engineInfo body: some Sequence<UInt8>) throws {
        let info = try JSONDecoder().decode(EngineInfo.self, from: Data(body))
        self.init(
            name: info.Name,
            isSwarmMember: info.Swarm?.LocalNodeState == "active",
            isManager: info.Swarm?.ControlAvailable ?? false)
    }
}

public enum ClusterError: Error, Sendable, CustomStringConvertible {
    case engineAnswered(UInt)
    case peerAnswered(UInt)

    public var description: String {
        switch self {
        case .engineAnswered(let code): return "the engine answered \(code)"
        case .peerAnswered(let code): return "the agent answered \(code)"
        }
    }
}
