import NIOCore
import NIOHTTP1

/// The steps a framed request head goes through before an exchange serves it: the
/// Portainer signature (when its route asks for one), cluster dispatch (another node,
/// a manager, or every member), then the route table. A step that refuses the request
/// says so with a plan too (`.refuse`), so the connection starts whatever comes out.
/// The first accepted signature also tells the connection limit that this connection's
/// slot is no longer one to give away.
struct RequestIntake {
    /// The plan for one request, and why.
    struct Decision {
        let route: Route
        let plan: RoutePlan
        /// The signature step refused it (counted apart from other refusals).
        let signatureRefused: Bool
    }

    private var signatures = SignatureCheck()
    /// A signature was accepted on this connection (the connection limit is told once).
    private var authenticated = false

    mutating func decide(_ head: HTTPRequestHead, services: AgentServices, channel: Channel) -> Decision {
        let route = Router.route(method: head.method, uri: head.uri)
        if route.requiresSignature, let refusal = signatures.refusal(
            for: head, verifier: services.verifier, failures: services.authenticationFailures, peer: channel.remoteAddress) {
            return Decision(route: route, plan: .refuse(refusal), signatureRefused: true)
        }
        if route.requiresSignature, !authenticated {
            authenticated = true
            services.connections?.authenticated(channel)
        }
        if let cluster = services.activeCluster, let local = cluster.localNode,
            let plan = ClusterDispatch.plan(for: head, route: route, cluster: cluster, local: local, aggregator: services.aggregator) {
            return Decision(route: route, plan: plan, signatureRefused: false)
        }
        return Decision(route: route, plan: services.routes.plan(for: route), signatureRefused: false)
    }
}
