import Hardware
import NIOCore

/// `GET /host/events`: this node's hardware changes as they happen, with
/// `CAP_HOST_MANAGEMENT=1`: a device of the inventory added, removed, changed, or its
/// driver bound or unbound, one JSON object per line tagged with the node's name
/// (`HostEventLine`). The stream lasts until the client goes.
struct GetHostEvents: EventStreamHandler {
    /// Nil without host management.
    let monitor: HardwareEventMonitor?
    /// Names this node as `GET /host/info` does.
    let local: GetHostInfo

    func open(_ request: AgentRequest, on eventLoop: EventLoop) -> Result<EventLineSource, AgentError> {
        Result { () throws(AgentError) in try source(on: eventLoop) }
    }

    func source(on eventLoop: EventLoop) throws(AgentError) -> LocalHostEvents {
        guard let monitor else { throw RouteTable.hostManagementDisabled }
        do {
            return try LocalHostEvents(monitor: monitor, nodeName: local.nodeName, on: eventLoop)
        } catch {
            throw AgentError(.serviceUnavailable, "Hardware events are unavailable on this node", details: error.description)
        }
    }
}
