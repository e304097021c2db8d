import Hardware
import NIOCore
import NIOPosix
import Proxy
#if canImport(Glibc)
import Glibc
#endif

/// `GET /host/info`: this node's hardware (PCI devices, physical disks, GPUs, USB,
/// network interfaces, CPU and memory, DMI, mounted filesystems), with
/// `CAP_HOST_MANAGEMENT=1`. `?filters=` (Docker's JSON form) narrows it on this node
/// (`Hardware/HostInfoFilter`); a bad one is a 400 naming what is wrong.
struct GetHostInfo: AgentHandler {
    let hostInfo: HostInfoCache?
    let threadPool: NIOThreadPool
    /// Names this node for the `node` filter: the Swarm's name for it, else the configured one, else the host name.
    let cluster: ClusterMembership?
    let configuredNodeName: String?

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let hostInfo else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        let filter: HostInfoFilter
        do {
            filter = try Self.filter(uri: request.head.uri)
        } catch {
            return eventLoop.makeSucceededFuture(.error(error))
        }
        // A cache miss walks sysfs and udev: keep it off the event loop.
        return threadPool.runIfActive(eventLoop: eventLoop) {
            AgentResponse.json(.ok, try AgentJSON.encode(filter.apply(to: hostInfo.hostInfo(), nodeName: nodeName)))
        }.recover { error in
            .error(AgentError(.internalServerError, "Unable to read the host's hardware", details: "\(error)"))
        }
    }

    /// This node's name: the Swarm's name for it, else the configured one, else the host name.
    var nodeName: String { cluster?.localNode?.name ?? configuredNodeName ?? Self.hostName }

    static func filter(uri: String) throws(AgentError) -> HostInfoFilter {
        guard let query = QueryParameters(uri: uri) else {
            throw AgentError(.badRequest, "Malformed query string")
        }
        guard let json = query["filters"], !json.isEmpty else { return .none }
        do {
            return try HostInfoFilter(json: json)
        } catch {
            throw AgentError(.badRequest, error.description)
        }
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
