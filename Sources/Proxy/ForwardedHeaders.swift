import ASCIIText
import NIOHTTP1

/// Header rules for requests the agent forwards upstream.
public enum ForwardedHeaders {
    /// The prefix of the agent protocol's own request headers (signature, target,
    /// manager operation). They are meant for agents, never for the engine.
    public static let agentPrefix: StaticString = "x-portaineragent-"

    /// The request head as the engine should see it: unchanged except that the
    /// agent's own headers are removed. One pass over the fields, and the kept ones
    /// are not checked again as `HTTPHeaders.add` would: the decoder accepted them.
    public static func engineRequest(from head: HTTPRequestHead) -> HTTPRequestHead {
        var kept: [(String, String)] = []
        kept.reserveCapacity(head.headers.count)
        for (name, value) in head.headers where !isAgentHeader(name) {
            kept.append((name, value))
        }
        guard kept.count < head.headers.count else { return head }
        var forwarded = head
        forwarded.headers = HTTPHeaders(kept)
        return forwarded
    }

    /// Case-insensitive prefix test without allocating: this runs for every header
    /// of every proxied request.
    static func isAgentHeader(_ name: String) -> Bool {
        ASCII.hasPrefixIgnoringCase(name, agentPrefix)
    }
}
