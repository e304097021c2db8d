import Hardware
import NIOCore
import NIOPosix

/// `GET /host/info`: this node's hardware (PCI devices, physical disks), with
/// `CAP_HOST_MANAGEMENT=1`.
struct GetHostInfo: AgentHandler {
    let hostInfo: HostInfoCache?
    let threadPool: NIOThreadPool

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let hostInfo else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        // A cache miss walks sysfs and udev: keep it off the event loop.
        return threadPool.runIfActive(eventLoop: eventLoop) {
            AgentResponse.json(.ok, try AgentJSON.encode(hostInfo.hostInfo()))
        }.recover { error in
            .error(AgentError(.internalServerError, "Unable to read the host's hardware", details: "\(error)"))
        }
    }
}
