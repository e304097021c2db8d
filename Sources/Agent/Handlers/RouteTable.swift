import Hardware
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Proxy

/// What the connection does with one request, as its route's handler says.
enum RoutePlan {
    /// The agent answers. With `collectsBody`, once the request's small JSON body
    /// (at most `RouteTable.maxBodySize`) has been read.
    case answer(any AgentHandler, collectsBody: Bool)
    /// The body streams to disk (`POST /browse/put`).
    case upload(BrowsePut)
    /// Checked with the engine, then a websocket bridged to its hijacked stream.
    case console(ConsoleKind)
    /// The Docker Engine API: relayed to the engine as it came.
    case relay
    /// Relayed with this head to another agent (`to`), or to the local engine (nil).
    /// With `flushesAtEnd` the answer goes back in one write (another agent reads it whole).
    case forward(HTTPRequestHead, to: UpstreamPool?, flushesAtEnd: Bool)
    /// A stream of JSON lines for as long as the client stays (`/v2/host/events`).
    case stream(any EventStreamHandler)
    /// Refused: answered with this error, and the connection ends.
    case refuse(AgentError)
}

/// One agent route's code: turns a routed request into a call on the modules below
/// and the result into a response. Each lives in `Handlers/<API path>/`.
protocol AgentHandler: Sendable {
    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse>
}

/// The one table from `Route` to the handler that serves it, and what handlers share
/// (settings, the file browser, the cluster, the hardware cache, the thread pool for
/// blocking work). To add a route: a case in `Route`, its line in `Router.route`, and
/// its line here naming a handler in `Handlers/<its path>/`.
struct RouteTable: Sendable {
    /// Agent routes take small JSON bodies at most; uploads stream instead.
    static let maxBodySize = 64 * 1024

    let configuration: AgentConfiguration
    let browser: FileBrowser
    let cluster: ClusterMembership?
    /// Asks every member at once (fleet routes); nil without a cluster.
    let aggregator: Aggregator?
    /// Present only with `CAP_HOST_MANAGEMENT=1`.
    let hostInfo: HostInfoCache?
    /// This node's host info answers as encoded, with their tags; with `hostInfo`.
    let hostInfoAnswers: HostInfoAnswers?
    /// Each member's last host info answer, for the fleet route to ask conditionally.
    let memberHostInfo = MemberAnswerCache()
    /// Watches over those answers, so that unchanged members are not asked.
    let memberHostInfoWatches: MemberWatches?
    /// The process's udev monitor, for the cache and the event streams; with host management only.
    let hardwareEvents: HardwareEventMonitor?
    let threadPool: NIOThreadPool
    /// The local engine, for the agent's own looks at it (not the relay's).
    let engine: UpstreamPool
    /// Nil when no TLS context for Docker Hub could be made (no trust roots): the
    /// route then says so, and the agent serves everything else.
    let dockerHub: Result<DockerHubRateLimit, AgentError>

    init(
        configuration: AgentConfiguration, engine: UpstreamPool, cluster: ClusterMembership? = nil, aggregator: Aggregator? = nil,
        threadPool: NIOThreadPool = .singleton
    ) throws {
        self.configuration = configuration
        self.engine = engine
        self.cluster = cluster
        self.aggregator = aggregator
        self.threadPool = threadPool
        self.memberHostInfoWatches = configuration.memberWatch == 0
            ? nil : MemberWatches(answers: memberHostInfo, wait: .seconds(Int64(configuration.memberWatch)))
        self.browser = FileBrowser(configuration: configuration)
        do {
            let tls = try TLSConfigurations.verifiedClient(trustRootsFile: configuration.dockerHubCAFile)
            self.dockerHub = .success(DockerHubRateLimit(
                authService: configuration.dockerHubAuthURL, registry: configuration.dockerHubRegistryURL,
                tls: try NIOSSLContext(configuration: tls), timeout: .seconds(3)))
        } catch {
            self.dockerHub = .failure(AgentError(
                .badGateway, "No trust roots to check Docker Hub's certificate with",
                details: "\(configuration.dockerHubCAFile ?? "the system's trust roots"): \(error)"))
        }
        if configuration.hostManagement {
            // pci.ids is parsed once here, not on the first request.
            let inventory = try HardwareInventory(hostRoot: HostRoot(path: configuration.hostRoot))
            let cache = HostInfoCache(inventory: inventory)
            _ = cache.watchForChanges()
            self.hostInfo = cache
            self.hostInfoAnswers = HostInfoAnswers()
            self.hardwareEvents = .shared
        } else {
            self.hostInfo = nil
            self.hostInfoAnswers = nil
            self.hardwareEvents = nil
        }
    }

    static let hostManagementDisabled = AgentError(.serviceUnavailable, "Host management capability disabled")

    private var localHostInfo: GetHostInfo {
        GetHostInfo(hostInfo: hostInfo, answers: hostInfoAnswers, threadPool: threadPool, cluster: cluster, configuredNodeName: configuration.nodeName)
    }

    private var localHostEvents: GetHostEvents {
        GetHostEvents(monitor: hardwareEvents, local: localHostInfo)
    }

    func plan(for route: Route) -> RoutePlan {
        switch route {
        case .ping:
            return .answer(GetPing(), collectsBody: false)
        case .agents:
            return .answer(GetAgents(cluster: cluster), collectsBody: false)
        case .memberInfo:
            return .answer(GetClusterMember(cluster: cluster), collectsBody: false)
        case .dockerHub:
            return .answer(PostDockerHub(rateLimit: dockerHub), collectsBody: true)
        case .clusterStatus:
            return .answer(GetClusterStatus(cluster: cluster, engine: engine, configuration: configuration), collectsBody: false)
        case .hostInfo:
            return .answer(localHostInfo, collectsBody: false)
        case .clusterHostInfo:
            return .answer(GetClusterHostInfo(
                local: localHostInfo, cluster: cluster, aggregator: aggregator, memberAnswers: memberHostInfo,
                memberWatches: memberHostInfoWatches), collectsBody: false)
        case .hostEvents:
            return .stream(localHostEvents)
        case .clusterHostEvents:
            return .stream(GetClusterHostEvents(local: localHostEvents, cluster: cluster))
        case .browse(let operation, let legacyVolumeID):
            let files = BrowseFiles(browser: browser, mountpoints: VolumeMountpoints(engine: engine), threadPool: threadPool, legacyVolumeID: legacyVolumeID)
            switch operation {
            case .ls: return .answer(BrowseLs(files: files), collectsBody: false)
            case .get: return .answer(BrowseGet(files: files), collectsBody: false)
            case .delete: return .answer(BrowseDelete(files: files), collectsBody: false)
            case .rename: return .answer(BrowseRename(files: files), collectsBody: true)
            case .put: return .upload(BrowsePut(files: files))
            }
        case .console(let kind):
            return .console(kind)
        case .methodNotAllowed(let allowed):
            return .answer(MethodNotAllowed(allowed: allowed), collectsBody: false)
        case .engine:
            return .relay
        }
    }
}

/// An agent path asked with another method: 405 with `Allow`.
struct MethodNotAllowed: AgentHandler {
    let allowed: HTTPMethod

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        var response = AgentResponse.error(AgentError(.methodNotAllowed, "Method not allowed, use \(allowed.rawValue)"))
        response.headers.add(name: "Allow", value: allowed.rawValue)
        return eventLoop.makeSucceededFuture(response)
    }
}
