import NIOCore
import NIOHTTP1
import Proxy

/// The steps a framed request head goes through before an exchange serves it: the
/// Portainer signature (when its route asks for one), cluster dispatch (another node,
/// a manager, or every member), then the route table. A step that refuses the request
/// says so with a plan too (`.refuse`), so the connection starts whatever comes out.
/// The first accepted signature also tells the connection limit that this connection's
/// slot is no longer one to give away; and each accepted request tells it which
/// secret admitted it, so that a rotation dropping that secret closes the connection
/// with whatever stream it carries (`ConnectionLimit.closeRevoked`).
struct RequestIntake {
    /// The plan for one request, and why.
    struct Decision {
        let route: Route
        let plan: RoutePlan
        /// The signature step refused it (counted apart from other refusals).
        let signatureRefused: Bool
    }

    private var signatures = SignatureCheck()
    /// What admitted this connection's latest request, as the connection limit was told.
    private var credential: ConnectionLimit.Credential?

    mutating func decide(_ head: HTTPRequestHead, services: AgentServices, channel: Channel) -> Decision {
        if let refusal = Self.targetRefusal(head) {
            return Decision(route: .engine, plan: .refuse(refusal), signatureRefused: false)
        }
        let route = Router.route(method: head.method, uri: head.uri)
        if route.requiresSignature, let refusal = signatures.refusal(
            for: head, verifier: services.verifier, failures: services.authenticationFailures, peer: channel.remoteAddress) {
            return Decision(route: route, plan: .refuse(refusal), signatureRefused: true)
        }
        var admitted = ConnectionLimit.Credential(signature: route.requiresSignature ? signatures.acceptedDigest : nil)
        var plan: RoutePlan?
        if let cluster = services.activeCluster, let local = cluster.localNode {
            // A request another agent forwarded here: with a secret, only if that agent
            // proves it holds one.
            if head.headers.contains(name: AgentHeaderName.hop) {
                switch cluster.admitForwarded(head, localName: local.name) {
                case .refused: return Decision(route: route, plan: .refuse(.unprovenPeer), signatureRefused: false)
                case .proven(let key): admitted.peerKey = key
                case .unchecked: break
                }
            }
            plan = ClusterDispatch.plan(for: head, route: route, cluster: cluster, local: local, aggregator: services.aggregator)
        }
        if admitted != credential, admitted.signature != nil || admitted.peerKey != nil {
            credential = admitted
            services.connections?.admitted(channel, by: admitted)
            // A rotation between the check above and this record found no record to
            // close: its secrets are in force by now, so this sees them.
            if let digest = admitted.signature, !services.verifier.accepts(digest) {
                return Decision(route: route, plan: .refuse(.invalidSignature), signatureRefused: true)
            }
            if let key = admitted.peerKey, services.activeCluster?.peerKey?.holds(key) != true {
                return Decision(route: route, plan: .refuse(.unprovenPeer), signatureRefused: false)
            }
        }
        return Decision(route: route, plan: plan ?? services.routes.plan(for: route), signatureRefused: false)
    }

    /// A request target the agent does not read the way Portainer and the engine (Go)
    /// do, refused before anything else reads it:
    /// - a `#`: Go keeps what follows it as query, the agent would cut it off, so a
    ///   `volumeID` after it was checked by Portainer (a volume the user owns) and
    ///   never seen here (the host browser);
    /// - anything but a path (absolute form, `*`) and `CONNECT`: the agent is not a
    ///   proxy, and no client of the engine's API sends them.
    static func targetRefusal(_ head: HTTPRequestHead) -> AgentError? {
        if head.method == .CONNECT {
            return AgentError(.methodNotAllowed, "CONNECT is not served", details: "the agent is not a proxy")
        }
        guard head.uri.utf8.first == UInt8(ascii: "/") else {
            return AgentError(.badRequest, "The request target must be a path", details: "absolute-form and asterisk-form targets are not served")
        }
        if head.uri.utf8.contains(UInt8(ascii: "#")) {
            return AgentError(.badRequest, "The request target may not carry a fragment", details: "'#' in the target")
        }
        return nil
    }
}
