import NIOHTTP1
import Proxy

/// Where one request goes, decided from its head alone (method and target).
enum Route: Equatable, Sendable {
    /// `GET /ping`: public liveness check, 204.
    case ping
    /// `GET /agents`: the cluster's members.
    case agents
    /// `GET /v2/cluster/member`: who this agent is, for peers probing it (public).
    case memberInfo
    /// `POST /dockerhub`: Docker Hub's pull-rate limit as this node sees it.
    case dockerHub
    /// `GET /v2/cluster/status`: what this agent believes about the cluster and its engine.
    case clusterStatus
    /// `GET /host/info`: hardware inventory.
    case hostInfo
    /// `GET /v2/cluster/host/info`: every node's hardware inventory in one answer.
    case clusterHostInfo
    /// `GET /host/events`: this node's hardware changes, as they happen (NDJSON stream).
    case hostEvents
    /// `GET /v2/cluster/host/events`: every node's hardware changes in one stream.
    case clusterHostEvents
    /// `/browse/<operation>`; `volumeID` comes from the legacy `/v1/browse/{volumeID}/…` path.
    case browse(BrowseOperation, volumeID: String?)
    /// `GET /websocket/exec|attach`: container console.
    case console(ConsoleKind)
    /// Anything else: the Docker Engine API, forwarded unchanged.
    case engine
    /// An agent path asked with the wrong method.
    case methodNotAllowed(allowed: HTTPMethod)

    /// Everything but `/ping` and the peer probe needs Portainer's signature.
    var requiresSignature: Bool { self != .ping && self != .memberInfo }

    /// Routes that `X-PortainerAgent-Target` can send to another node.
    var isTargetable: Bool {
        switch self {
        case .engine, .browse, .hostInfo, .clusterHostInfo, .hostEvents, .clusterHostEvents, .console, .clusterStatus, .dockerHub: return true
        case .ping, .agents, .memberInfo, .methodNotAllowed: return false
        }
    }
}

enum BrowseOperation: String, Sendable, CaseIterable {
    case ls, get, delete, rename, put

    var method: HTTPMethod {
        switch self {
        case .ls, .get: return .GET
        case .delete: return .DELETE
        case .rename: return .PUT
        case .put: return .POST
        }
    }
}

enum ConsoleKind: String, Sendable {
    case exec, attach
}

/// Which node or nodes a request is for, in a cluster.
enum ClusterScope: Equatable, Sendable {
    /// This node.
    case local
    /// The node `X-PortainerAgent-Target` names (maybe this one).
    case node(String)
    /// Any manager: Swarm-wide resources, or `X-PortainerAgent-ManagerOperation`.
    case manager
    /// Every node, merged.
    case aggregate(AggregatedList)
}
