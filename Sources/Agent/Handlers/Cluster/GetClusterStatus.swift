import NIOCore
import NIOHTTP1
import Proxy

/// `GET /v2/cluster/status` (signed; the target header asks another node's agent):
/// what this agent believes about its engine and its cluster, for an operator whose
/// cluster "falls apart": each address it probes, who answered there, when, how fast,
/// how many probes failed since, the last error, and why a member was dropped.
package struct GetClusterStatus: AgentHandler {
    let cluster: ClusterMembership?
    let engine: UpstreamPool
    let configuration: AgentConfiguration

    package struct Status: Codable {
        package var NodeName: String?
        package var NodeRole: String?
        package var Version: String
        package var Engine: EngineStatus
        package var Cluster: ClusterStatus?
    }

    package struct EngineStatus: Codable {
        /// The engine answered `/_ping` just now.
        package var Answers: Bool
        package var RoundTripMs: Double?
        package var Error: String?
        package var SwarmMember: Bool?
    }

    package struct ClusterStatus: Codable {
        package var Address: String
        package var ProbeIntervalSeconds: Double
        package var MemberTimeoutSeconds: Double
        package var Members: [ProbeRecord]
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
