/// The label a request is counted under: a small fixed set, never a path, so that
/// the number of series stays bounded whatever clients ask for.
enum RouteFamily: Int, CaseIterable, Sendable {
    case ping, agent, host, clusterHost, browse, console, engine, clusterList, forward, refused, other

    var label: String {
        switch self {
        case .ping: return "ping"
        case .agent: return "agent"
        case .host: return "host"
        case .clusterHost: return "cluster-host"
        case .browse: return "browse"
        case .console: return "console"
        case .engine: return "engine"
        case .clusterList: return "cluster-list"
        case .forward: return "forward"
        case .refused: return "refused"
        case .other: return "other"
        }
    }

    /// Whether an answer of this family merges every member's part (and can be partial).
    var isAggregated: Bool { self == .clusterList || self == .clusterHost }

    /// The family of a request routed to `route` and planned as `plan` (cluster plans
    /// decide aggregation and forwarding).
    init(route: Route, plan: RoutePlan) {
        switch plan {
        case .answer(let handler, _) where handler is MergeNodeLists: self = .clusterList
        case .forward(_, to: .some, _): self = .forward
        case .refuse: self = .refused
        default: self.init(route)
        }
    }

    init(_ route: Route) {
        switch route {
        case .ping: self = .ping
        case .agents, .memberInfo, .dockerHub, .clusterStatus: self = .agent
        case .hostInfo, .hostEvents: self = .host
        case .clusterHostInfo, .clusterHostEvents: self = .clusterHost
        case .browse: self = .browse
        case .console: self = .console
        case .engine: self = .engine
        case .methodNotAllowed: self = .other
        }
    }
}
