import NIOCore
import NIOHTTP1
import Proxy

/// One connection's request timing: from a request's head to its answer's (the first
/// final head, or the `101` of a hijack). Without metrics it holds nil and records nothing.
struct RequestMeter {
    let metrics: AgentMetrics?
    private var pending: (family: RouteFamily, began: NIODeadline)?

    init(metrics: AgentMetrics?) {
        self.metrics = metrics
    }

    /// A request of `family` begins (the family is worked out only with metrics on).
    @inline(__always)
    mutating func began(_ family: @autoclosure () -> RouteFamily) {
        if metrics != nil { pending = (family(), .now()) }
    }

    /// A request refused for its signature.
    mutating func refusedSignature() {
        guard let metrics else { return }
        metrics.refusedSignatures.increment()
        pending = (.refused, .now())
    }

    /// A response head is going out.
    @inline(__always)
    mutating func answering(_ head: HTTPResponseHead) {
        guard let request = pending, head.status.code >= 200 || head.status.code == 101 else { return }
        pending = nil
        metrics?.answered(
            request.family, status: Int(head.status.code), partial: head.headers.contains(name: AgentHeaderName.unreachableNodes),
            nanoseconds: (NIODeadline.now() - request.began).nanoseconds)
    }

    /// A response head relayed in bytes is going out (one from the engine: never partial).
    @inline(__always)
    mutating func answering(statusCode: Int) {
        guard let request = pending, statusCode >= 200 || statusCode == 101 else { return }
        pending = nil
        metrics?.answered(request.family, status: statusCode, partial: false, nanoseconds: (NIODeadline.now() - request.began).nanoseconds)
    }
}
