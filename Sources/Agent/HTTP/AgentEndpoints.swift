import Hardware
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy

/// One request to an agent route: its head and, for routes that take a small
/// JSON body, that body (bounded by `AgentEndpoints.maxBodySize`).
struct AgentRequest {
    var route: Route
    var head: HTTPRequestHead
    var body: ByteBuffer?
    /// The connection's two ends, for the cluster probe's answer.
    var localAddress: SocketAddress?
    var remoteAddress: SocketAddress?
}

/// The agent's own routes: the thin layer that turns a routed request into a call
/// on the modules below and the result into a response.
struct AgentEndpoints: Sendable {
    /// Agent routes take small JSON bodies at most; uploads stream instead.
    static let maxBodySize = 64 * 1024

    let configuration: AgentConfiguration
    let browser: FileBrowser
    let cluster: ClusterMembership?
    /// Present only with `CAP_HOST_MANAGEMENT=1`.
    let hostInfo: HostInfoCache?
    let threadPool: NIOThreadPool

    init(configuration: AgentConfiguration, cluster: ClusterMembership? = nil, threadPool: NIOThreadPool = .singleton) throws {
        self.configuration = configuration
        self.cluster = cluster
        self.threadPool = threadPool
        self.browser = FileBrowser(configuration: configuration)
        if configuration.hostManagement {
            // pci.ids is parsed once here, not on the first request.
            let inventory = try HardwareInventory(hostRoot: HostRoot(path: configuration.hostRoot))
            let cache = HostInfoCache(inventory: inventory)
            _ = cache.watchForChanges()
            self.hostInfo = cache
        } else {
            self.hostInfo = nil
        }
    }

    static let hostManagementDisabled = AgentError(.serviceUnavailable, "Host management capability disabled")

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        switch request.route {
        case .ping:
            return eventLoop.makeSucceededFuture(.empty(.noContent))
        case .agents:
            guard let cluster, cluster.localNode?.isSwarmMember == true else {
                return eventLoop.makeSucceededFuture(.error(AgentError(
                    .serviceUnavailable,
                    "Agent management is not available when running the agent on a standalone engine")))
            }
            struct Agent: Encodable {
                var IPAddress: String
                var Port: String
                var NodeName: String
                var NodeRole: String
            }
            let agents = cluster.members.map { Agent(IPAddress: $0.host, Port: String($0.port), NodeName: $0.nodeName, NodeRole: $0.role) }
            return eventLoop.makeCompletedFuture { .json(.ok, try AgentJSON.encode(agents)) }
        case .memberInfo:
            guard let cluster, let node = cluster.localNode else {
                return eventLoop.makeSucceededFuture(.error(AgentError(.serviceUnavailable, "This agent is not part of a cluster")))
            }
            // What a probe needs, to whom it may be told; the version only to a proven peer.
            let admission = cluster.admitProbe(
                challenge: request.head.headers.first(name: AgentHeaderName.challenge), local: request.localAddress, remote: request.remoteAddress)
            return eventLoop.makeCompletedFuture {
                switch admission {
                case .refused:
                    return .error(.notAPeer)
                case .clusterAddress:
                    return .json(.ok, try AgentJSON.encode(MemberInfo(NodeName: node.name, NodeRole: node.role)))
                case .proven(let nonce):
                    let body = try AgentJSON.encode(MemberInfo(NodeName: node.name, NodeRole: node.role, Version: AgentVersion.deckhand))
                    var response = AgentResponse.json(.ok, body)
                    if let peerKey = cluster.peerKey { response.headers.add(name: AgentHeaderName.proof, value: peerKey.answerProof(nonce: nonce, body: body)) }
                    return response
                }
            }
        case .hostInfo:
            guard let hostInfo else { return eventLoop.makeSucceededFuture(.error(Self.hostManagementDisabled)) }
            // A cache miss walks sysfs and udev: keep it off the event loop.
            return threadPool.runIfActive(eventLoop: eventLoop) {
                AgentResponse.json(.ok, try AgentJSON.encode(hostInfo.hostInfo()))
            }.recover { error in
                .error(AgentError(.internalServerError, "Unable to read the host's hardware", details: "\(error)"))
            }
        case .browse(let operation, let legacyVolumeID):
            guard let query = QueryParameters(uri: request.head.uri) else {
                return eventLoop.makeSucceededFuture(.error(AgentError(.badRequest, "Malformed query string")))
            }
            let volumeID = legacyVolumeID ?? query["volumeID"]
            let (browser, head, body) = (self.browser, request.head, request.body.map { Array($0.readableBytesView) } ?? [])
            return threadPool.runIfActive(eventLoop: eventLoop) { () throws(AgentError) -> AgentResponse in
                switch operation {
                case .ls: return try browser.list(volumeID: volumeID, path: query["path"])
                case .get: return try browser.download(volumeID: volumeID, path: query["path"], requestHeaders: head.headers)
                case .delete: return try browser.delete(volumeID: volumeID, path: query["path"])
                case .rename: return try browser.rename(volumeID: volumeID, body: body)
                case .put: preconditionFailure("uploads stream through UploadSession")
                }
            }.recover { error in
                .error(error as? AgentError ?? AgentError(.internalServerError, "\(error)"))
            }
        case .console:
            return eventLoop.makeSucceededFuture(.error(AgentError(.notImplemented, "This agent route is not available in this Deckhand version")))
        case .methodNotAllowed(let allowed):
            var response = AgentResponse.error(AgentError(.methodNotAllowed, "Method not allowed, use \(allowed.rawValue)"))
            response.headers.add(name: "Allow", value: allowed.rawValue)
            return eventLoop.makeSucceededFuture(response)
        case .engine:
            preconditionFailure("engine routes are relayed, not answered")
        }
    }
}
