import NIOHTTP1
import Testing
@testable import Agent

@Suite("Routing a request head")
struct RouterTests {
    static let table: [(HTTPMethod, String, Route)] = [
        (.GET, "/ping", .ping),
        (.GET, "/v2/ping", .ping),
        (.HEAD, "/ping", .ping),
        (.POST, "/ping", .methodNotAllowed(allowed: .GET)),
        (.GET, "/_ping", .engine),
        (.GET, "/v1.41/_ping", .engine),
        (.GET, "/agents", .agents),
        (.GET, "/v2/agents", .agents),
        (.POST, "/agents", .methodNotAllowed(allowed: .GET)),
        (.GET, "/host/info", .hostInfo),
        (.GET, "/v2/cluster/status", .clusterStatus),
        (.GET, "/v1.41/v2/cluster/status", .clusterStatus),
        (.POST, "/v2/cluster/status", .methodNotAllowed(allowed: .GET)),
        (.GET, "/v2/host/info?x=1", .hostInfo),
        (.GET, "/v2/cluster/host/info", .clusterHostInfo),
        (.GET, "/cluster/host/info?filters=%7B%7D", .clusterHostInfo),
        (.POST, "/v2/cluster/host/info", .methodNotAllowed(allowed: .GET)),
        (.GET, "/v2/cluster/host/info/x", .engine),
        (.GET, "/host/events", .hostEvents),
        (.GET, "/v2/host/events", .hostEvents),
        (.POST, "/v2/host/events", .methodNotAllowed(allowed: .GET)),
        (.GET, "/v2/cluster/host/events", .clusterHostEvents),
        (.GET, "/v1.41/v2/cluster/host/events", .clusterHostEvents),
        (.DELETE, "/cluster/host/events", .methodNotAllowed(allowed: .GET)),
        (.GET, "/v2/host/events/x", .engine),
        (.GET, "/browse/ls?path=/host", .browse(.ls, volumeID: nil)),
        (.GET, "/v2/browse/get?volumeID=v&path=a", .browse(.get, volumeID: nil)),
        (.DELETE, "/browse/delete", .browse(.delete, volumeID: nil)),
        (.PUT, "/browse/rename", .browse(.rename, volumeID: nil)),
        (.POST, "/browse/put", .browse(.put, volumeID: nil)),
        (.GET, "/browse/put", .methodNotAllowed(allowed: .POST)),
        (.GET, "/v1/browse/myvol/ls?path=/", .browse(.ls, volumeID: "myvol")),
        (.POST, "/v1/browse/myvol/put", .browse(.put, volumeID: "myvol")),
        (.GET, "/browse/unknown", .engine),
        (.GET, "/websocket/exec?id=abc", .console(.exec)),
        (.GET, "/v2/websocket/attach?id=abc", .console(.attach)),
        (.GET, "/v1.41/containers/json", .engine),
        (.GET, "/containers/json?all=1", .engine),
        (.POST, "/v1.41/containers/abc/attach?stream=1", .engine),
        (.GET, "/v1.41/ping", .ping),
        (.GET, "/v1.41/browse/ls", .browse(.ls, volumeID: nil)),
        (.GET, "/vx.41/ping", .engine),
        (.GET, "/v1./ping", .engine),
        // Portainer and the original agent strip `/v[0-9]\.[0-9]*`: one digit before the dot.
        (.GET, "/v12.3/browse/ls", .engine),
        (.GET, "/v01.41/browse/ls", .engine),
        (.GET, "/v9.0/browse/ls", .browse(.ls, volumeID: nil)),
        (.GET, "", .engine),
        (.GET, "*", .engine),
        (.GET, "/ping/", .engine),
        (.GET, "//ping", .engine),
    ]

    @Test("the routing table", arguments: table)
    func route(method: HTTPMethod, uri: String, expected: Route) {
        #expect(Router.route(method: method, uri: uri) == expected)
    }

    @Test("only /ping is public")
    func publicRoutes() {
        #expect(!Route.ping.requiresSignature)
        #expect(Route.engine.requiresSignature)
        #expect(Route.agents.requiresSignature)
        #expect(Route.browse(.ls, volumeID: nil).requiresSignature)
        #expect(Route.hostEvents.requiresSignature)
        #expect(Route.clusterHostEvents.requiresSignature)
    }
}
