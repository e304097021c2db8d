import NIOHTTP1
import Proxy

/// The one place that maps a request head to a `Route`, with Portainer's rules:
/// a leading Docker API version (`/v1.41`) is ignored for routing (but kept when
/// forwarding), `/v2/<x>` is `/<x>` for agent routes, and the legacy
/// `/v1/browse/{volumeID}/<op>` volume routes.
enum Router {
    static func route(method: HTTPMethod, uri: String) -> Route {
        route(method: method, uri: uri, engineShortcut: true)
    }

    /// `engineShortcut: false` leaves out the early answer for paths no agent route
    /// starts like; the routing fuzzer checks that both ways agree.
    static func route(method: HTTPMethod, uri: String, engineShortcut: Bool) -> Route {
        var path = Substring(uri)
        if let query = path.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            path = path[..<query]
        }
        path = stripDockerVersion(path)
        // A path that does not start with "/" is never an agent route.
        guard path.hasPrefix("/") else { return .engine }
        // Most requests are the engine's: answered without splitting their path.
        if engineShortcut, !mayBeAgentRoute(path) { return .engine }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if segments.first == "v1", segments.count == 4, segments[segments.startIndex + 1] == "browse",
           let operation = BrowseOperation(rawValue: String(segments[segments.startIndex + 3])) {
            let volumeID = String(segments[segments.startIndex + 2])
            return check(method, .browse(operation, volumeID: volumeID.isEmpty ? nil : volumeID), allowed: operation.method)
        }
        if segments.first == "v2" {
            segments = segments.dropFirst()
        }
        let parts = Array(segments)
        switch parts.count {
        case 1 where parts[0] == "ping":
            // HEAD is what docker's own client sends to a ping: answered like GET, without a body.
            return method == .HEAD ? .ping : check(method, .ping, allowed: .GET)
        case 1 where parts[0] == "dockerhub":
            return check(method, .dockerHub, allowed: .POST)
        case 1 where parts[0] == "agents":
            return check(method, .agents, allowed: .GET)
        case 2 where parts[0] == "cluster" && parts[1] == "member":
            return check(method, .memberInfo, allowed: .GET)
        case 2 where parts[0] == "cluster" && parts[1] == "status":
            return check(method, .clusterStatus, allowed: .GET)
        case 2 where parts[0] == "host" && parts[1] == "info":
            return check(method, .hostInfo, allowed: .GET)
        case 3 where parts[0] == "cluster" && parts[1] == "host" && parts[2] == "info":
            return check(method, .clusterHostInfo, allowed: .GET)
        case 2 where parts[0] == "host" && parts[1] == "events":
            return check(method, .hostEvents, allowed: .GET)
        case 3 where parts[0] == "cluster" && parts[1] == "host" && parts[2] == "events":
            return check(method, .clusterHostEvents, allowed: .GET)
        case 2 where parts[0] == "browse":
            guard let operation = BrowseOperation(rawValue: String(parts[1])) else { return .engine }
            return check(method, .browse(operation, volumeID: nil), allowed: operation.method)
        case 2 where parts[0] == "websocket":
            guard let kind = ConsoleKind(rawValue: String(parts[1])) else { return .engine }
            return check(method, .console(kind), allowed: .GET)
        default:
            return .engine
        }
    }

    /// The first segments an agent route can start with (after a Docker version).
    private static let agentFirstSegments: [[UInt8]] =
        ["ping", "dockerhub", "agents", "cluster", "host", "browse", "websocket", "v1", "v2"].map { Array($0.utf8) }

    /// Whether the first segment of `path` (which starts with "/") is one an agent route
    /// starts with, compared byte for byte: for these ASCII names that is what `String`'s
    /// comparison decides too (no other spelling is canonically equivalent to them).
    private static func mayBeAgentRoute(_ path: Substring) -> Bool {
        let segment = path.utf8.dropFirst().prefix { $0 != UInt8(ascii: "/") }
        return agentFirstSegments.contains { segment.elementsEqual($0) }
    }

    /// Swarm-wide resources: only a manager's engine can answer them.
    static let managerPaths: Set<Substring> = ["services", "tasks", "secrets", "configs", "swarm", "info", "nodes"]

    /// The cluster half of routing: for Docker calls the manager-operation header
    /// first (it wins over a target, as in the original agent's dockerOperation), then
    /// the target header, then manager-only resources, then the lists every node
    /// contributes to.
    static func scope(for route: Route, method: HTTPMethod, uri: String, headers: HTTPHeaders) -> ClusterScope {
        if route == .engine, let flag = headers.first(name: AgentHeaderName.managerOperation), !flag.isEmpty {
            return .manager
        }
        if route.isTargetable, let target = headers.first(name: AgentHeaderName.target), !target.isEmpty {
            return .node(target)
        }
        // Portainer's console may name the node in the query instead.
        if case .console = route, let node = QueryParameters(uri: uri)?["nodeName"], !node.isEmpty {
            return .node(node)
        }
        guard route == .engine else { return .local }
        var path = Substring(uri)
        if let query = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<query] }
        path = stripDockerVersion(path)
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = segments.first else { return .local }
        if managerPaths.contains(first) { return .manager }
        guard method == .GET else { return .local }
        switch (segments.count, first) {
        case (1, "volumes"): return .aggregate(.volumes)
        case (1, "networks"): return .aggregate(.array)
        case (2, "containers") where segments[1] == "json": return .aggregate(.array)
        case (2, "images") where segments[1] == "json": return .aggregate(.array)
        default: return .local
        }
    }

    private static func check(_ method: HTTPMethod, _ route: Route, allowed: HTTPMethod) -> Route {
        method == allowed ? route : .methodNotAllowed(allowed: allowed)
    }

    /// `/v1.41/containers/json` → `/containers/json`. Only the dotted Docker form, with
    /// one digit before its dot as Portainer's and the original agent's `/v[0-9]\.[0-9]*`
    /// (so `/v12.3/browse/…` is no agent route here either, as it is none to Portainer,
    /// which checks agent routes only where it strips the same way): `/v1/…` and
    /// `/v2/…` are the agent's own prefixes.
    static func stripDockerVersion(_ path: Substring) -> Substring {
        let utf8 = path.utf8
        guard utf8.count > 4, path.hasPrefix("/v") else { return path }
        var index = utf8.index(utf8.startIndex, offsetBy: 2)
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(utf8[index]) else { return path }
        index = utf8.index(after: index)
        guard utf8[index] == UInt8(ascii: ".") else { return path }
        index = utf8.index(after: index)
        var digitAfterDot = false
        while index < utf8.endIndex, utf8[index] != UInt8(ascii: "/") {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(utf8[index]) else { return path }
            digitAfterDot = true
            index = utf8.index(after: index)
        }
        guard digitAfterDot else { return path }
        let rest = path[index...]
        return rest.isEmpty ? "/" : rest
    }
}
