import Hardware
import NIOCore
import Proxy

/// `GET /host/events`: this node's hardware changes as they happen, with
/// `CAP_HOST_MANAGEMENT=1`: a device of the inventory added, removed, changed, or its
/// driver bound or unbound, one JSON object per line tagged with the node's name
/// (`HostEventLine`). The stream lasts until the client goes. With `since` (a Unix
/// time in seconds, as the Engine API's `/events` takes it), the events this node kept
/// from then on come first (`HardwareEventMonitor.historyCapacity`).
struct GetHostEvents: EventStreamHandler {
    /// Nil without host management.
    let monitor: HardwareEventMonitor?
    /// Names this node as `GET /host/info` does.
    let local: GetHostInfo

    func open(_ request: AgentRequest, on eventLoop: EventLoop) -> Result<EventLineSource, AgentError> {
        Result { () throws(AgentError) in try source(since: try Self.since(uri: request.head.uri), on: eventLoop) }
    }

    func source(since: Int64?, on eventLoop: EventLoop) throws(AgentError) -> LocalHostEvents {
        guard let monitor else { throw RouteTable.hostManagementDisabled }
        do {
            return try LocalHostEvents(monitor: monitor, nodeName: local.nodeName, since: since, on: eventLoop)
        } catch {
            throw AgentError(.serviceUnavailable, "Hardware events are unavailable on this node", details: error.description)
        }
    }

    /// `since` in nanoseconds since the Unix epoch: seconds, with up to nine decimals.
    static func since(uri: String) throws(AgentError) -> Int64? {
        guard let query = QueryParameters(uri: uri) else { throw AgentError(.badRequest, "Malformed query string") }
        guard let text = query["since"] else { return nil }
        guard let nanoseconds = unixNanoseconds(text) else {
            throw AgentError(.badRequest, "since must be a Unix time in seconds (up to 9 decimals), not \(PeerText.quoted(text))")
        }
        return nanoseconds
    }

    /// `1764467000` or `1764467000.123456789` as nanoseconds; nil for anything else
    /// (a sign, an exponent, more than 9 decimals, a time past 2262).
    static func unixNanoseconds(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let digits = { (part: Substring) in !part.isEmpty && part.utf8.allSatisfy { (0x30...0x39).contains($0) } }
        guard let whole = parts.first, digits(whole), whole.utf8.count <= 10, let seconds = Int64(whole) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            // Nine digits of nanoseconds once padded: "5" is 500000000.
            let decimals = parts[1]
            guard digits(decimals), decimals.utf8.count <= 9,
                  let value = Int64(decimals + String(repeating: "0", count: 9 - decimals.utf8.count)) else { return nil }
            fraction = value
        }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (sum, overflowed) = scaled.addingReportingOverflow(fraction)
        return overflowed ? nil : sum
    }
}

extension GetHostEvents {
    /// Nanoseconds as `since` takes them: seconds and nine decimals (0 for a time before 1970).
    static func unixSeconds(_ nanoseconds: Int64) -> String {
        let nanoseconds = max(0, nanoseconds)
        let fraction = String(nanoseconds % 1_000_000_000)
        return "\(nanoseconds / 1_000_000_000)." + String(repeating: "0", count: 9 - fraction.utf8.count) + fraction
    }
}
