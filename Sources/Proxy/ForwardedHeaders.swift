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

    /// Case-insensitive prefix test without allocating: this runs for every header
    /// of every proxied request.
    static func isAgentHeader(_ name: String) -> Bool {
        var prefix = agentPrefix.utf8.makeIterator()
        for byte in name.utf8 {
            guard let expected = prefix.next() else { return true }
            let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            guard lower == expected else { return false }
        }
        return prefix.next() == nil
    }
}
