import Hardware
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy
#if canImport(Glibc)
import Glibc
#endif

/// `GET /host/info`: this node's hardware (PCI devices, physical disks, GPUs, USB,
/// network interfaces, CPU and memory, DMI, mounted filesystems), with
/// `CAP_HOST_MANAGEMENT=1`. `?filters=` (Docker's JSON form) narrows it on this node
/// (`Hardware/HostInfoFilter`); a bad one is a 400 naming what is wrong. Every answer
/// carries an `ETag`, and a request whose `If-None-Match` names it gets a `304`
/// (`HostInfoAnswers`): what the agent that asks for the fleet's inventory sends.
struct GetHostInfo: AgentHandler {
    let hostInfo: HostInfoCache?
    /// The answers encoded so far; present with `hostInfo`.
    let answers: HostInfoAnswers?
    let threadPool: NIOThreadPool
    /// Names this node for the `node` filter: the Swarm's name for it, else the configured one, else the host name.
    let cluster: ClusterMembership?
    let configuredNodeName: String?

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let hostInfo, let answers else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        let filter: HostInfoFilter
        do {
            filter = try Self.filter(uri: request.head.uri)
        } catch {
            return eventLoop.makeSucceededFuture(.error(error))
        }
        let (nodeName, conditions) = (self.nodeName, request.head.headers[canonicalForm: "If-None-Match"])
        // Warm and encoded already: answered here.
        if let snapshot = hostInfo.freshSnapshot(), let answer = answers.answer(for: snapshot, filter, nodeName: nodeName) {
            return eventLoop.makeSucceededFuture(Self.response(answer, conditions: conditions))
        }
        // A cache miss walks sysfs and udev: keep it off the event loop.
        return threadPool.runIfActive(eventLoop: eventLoop) {
            let snapshot = hostInfo.snapshot()
            let answer = try answers.answer(for: snapshot, filter, nodeName: nodeName) ?? answers.encode(snapshot, filter, nodeName: nodeName)
            return Self.response(answer, conditions: conditions)
        }.recover { error in
            .error(AgentError(.internalServerError, "Unable to read the host's hardware", details: "\(error)"))
        }
    }

    /// `answer`, or a `304` when the `If-None-Match` elements `conditions` name its tag.
    static func response(_ answer: HostInfoAnswers.Answer, conditions: [Substring]) -> AgentResponse {
        let tag: HTTPHeaders = ["ETag": answer.entityTag]
        if HostInfoAnswers.matches(conditions, entityTag: answer.entityTag) {
            return AgentResponse(status: .notModified, headers: tag)
        }
        var headers = tag
        headers.add(name: "Content-Type", value: "application/json")
        return AgentResponse(status: .ok, headers: headers, buffer: answer.body)
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
