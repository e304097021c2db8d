import NIOCore
import NIOHTTP1
import Proxy

/// `GET /v2/cluster/status` (signed; the target header asks another node's agent):
/// what this agent believes about its engine and its cluster, for an operator whose
/// cluster "falls apart": each address it probes, who answered there, when, how fast,
/// how many probes failed since, the last error, and why a member was dropped.
struct GetClusterStatus: AgentHandler {
    let cluster: ClusterMembership?
    let engine: UpstreamPool
    let configuration: AgentConfiguration

    struct Status: Codable {
        var NodeName: String?
        var NodeRole: String?
        var Version: String
        var Engine: EngineStatus
        var Cluster: ClusterStatus?
    }

    struct EngineStatus: Codable {
        /// The engine answered `/_ping` just now.
        var Answers: Bool
        var RoundTripMs: Double?
        var Error: String?
        var SwarmMember: Bool?
    }

    struct ClusterStatus: Codable {
        var Address: String
        var ProbeIntervalSeconds: Double
        var MemberTimeoutSeconds: Double
        var Members: [ProbeRecord]
    }

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/_ping", headers: ["Host": "docker"])
        let started = NIODeadline.now()
        let (cluster, configuration) = (self.cluster, self.configuration)
        return engine.collect(head, on: eventLoop, limit: 4096, timeout: .seconds(2))
            .map { response -> EngineStatus in
                let milliseconds = Double((NIODeadline.now() - started).nanoseconds) / 1e6
                return response.head.status == .ok
                    ? EngineStatus(Answers: true, RoundTripMs: milliseconds)
                    : EngineStatus(Answers: false, RoundTripMs: milliseconds, Error: "answered /_ping with \(response.head.status.code)")
            }
            .recover { error in EngineStatus(Answers: false, Error: "\(error)") }
            .flatMapThrowing { engineStatus -> AgentResponse in
                var engineStatus = engineStatus
                let local = cluster?.localNode
                engineStatus.SwarmMember = local?.isSwarmMember
                if engineStatus.Error == nil, let error = cluster?.engineError { engineStatus.Error = "last /info: \(error)" }
                let clusterStatus = cluster.map {
                    ClusterStatus(
                        Address: "\($0.settings.address)", ProbeIntervalSeconds: configuration.probeInterval,
                        MemberTimeoutSeconds: configuration.memberTimeout, Members: $0.probeRecords)
                }
                let status = Status(
                    NodeName: local?.name, NodeRole: local?.role, Version: AgentVersion.deckhand, Engine: engineStatus, Cluster: clusterStatus)
                return .json(.ok, try AgentJSON.encode(status))
            }
    }
}
