import NIOHTTP1

/// Header rules for requests the agent forwards upstream.
public enum ForwardedHeaders {
    /// The prefix of the agent protocol's own request headers (signature, target,
    /// manager operation). They are meant for agents, never for the engine.
    public static let agentPrefix = "x-portaineragent-"

    /// The request head as the engine should see it: unchanged except that the
    /// agent's own headers are removed.
    public static func engineRequest(from head: HTTPRequestHead) -> HTTPRequestHead {
        var forwarded = head
        if head.headers.contains(where: { isAgentHeader($0.name) }) {
            var headers = HTTPHeaders()
            headers.reserveCapacity(head.headers.count)
            for (name, value) in head.headers where !isAgentHeader(name) {
                headers.add(name: name, value: value)
            }
            forwarded.headers = headers
        }
        return forwarded
    }

    static func isAgentHeader(_ name: String) -> Bool {
        name.utf8.count >= agentPrefix.utf8.count
            && name.lowercased().hasPrefix(agentPrefix)
    }
}
