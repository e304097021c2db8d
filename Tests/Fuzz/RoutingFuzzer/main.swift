import FuzzSupport
import NIOHTTP1
import Proxy
@testable import Agent

// Request routing and query parsing: Router.route, Router.scope and QueryParameters on
// a request line and the two cluster headers. Input: lines "METHOD", "URI", then the
// X-PortainerAgent-Target and -ManagerOperation values (each may be missing).

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let method = HTTPMethod(rawValue: input.text())
    let uri = input.text()
    var headers = HTTPHeaders()
    if !input.isEmpty { headers.add(name: AgentHeaderName.target, value: input.text()) }
    if !input.isEmpty { headers.add(name: AgentHeaderName.managerOperation, value: input.text()) }

    let route = Router.route(method: method, uri: uri)
    require(Router.route(method: method, uri: uri, engineShortcut: false) == route,
            "the engine shortcut changed the route of \(uri.debugDescription)")
    let scope = Router.scope(for: route, method: method, uri: uri, headers: headers)
    let query = QueryParameters(uri: uri)
    checkRouting(method: method, uri: uri, route: route, scope: scope, headers: headers)
    if let query { _ = query["nodeName"] }
    checkQueryDecoding(uri)
    return 0
}

/// Properties of routing that hold for every request.
func checkRouting(method: HTTPMethod, uri: String, route: Route, scope: ClusterScope, headers: HTTPHeaders) {
    // The route is decided by the path alone: a query or fragment never changes it.
    if !uri.contains("?"), !uri.contains("#") {
        require(Router.route(method: method, uri: uri + "?a=b#c") == route, "a query changed the route of \(uri.debugDescription)")
    }
    // A Docker API version prefix is ignored for routing (and for the cluster scope).
    let path = Substring(uri.prefix { $0 != "?" && $0 != "#" })
    if path.hasPrefix("/"), Router.stripDockerVersion(path) == path {
        let versioned = "/v1.41" + uri
        require(Router.route(method: method, uri: versioned) == route, "a version prefix changed the route of \(uri.debugDescription)")
        require(Router.scope(for: route, method: method, uri: versioned, headers: headers) == scope,
                "a version prefix changed the scope of \(uri.debugDescription)")
    }
    // Stripping the version leaves a path, never an empty string.
    let stripped = Router.stripDockerVersion(path)
    require(!path.hasPrefix("/") || stripped.hasPrefix("/"), "stripping \(path.debugDescription) gave \(stripped.debugDescription)")
    // Only routes a target header may move go to another node by it.
    if case .node(let name) = scope {
        require(route.isTargetable, "\(route) was sent to node \(name)")
        require(!name.isEmpty, "an empty node name")
    }
    if case .aggregate = scope { require(route == .engine && method == .GET, "\(method) \(uri) aggregated") }
    if case .manager = scope { require(route == .engine, "agent route \(route) sent to a manager") }
    // Everything but the two public routes needs a signature.
    if route != .ping, route != .memberInfo { require(route.requiresSignature, "\(route) without a signature") }
}

/// Percent-encoding any text and decoding it gives the text back, whatever its bytes.
func checkQueryDecoding(_ text: String) {
    var encoded = ""
    for byte in text.utf8 {
        encoded += "%" + String(byte, radix: 16, uppercase: byte & 1 == 0).leftPadded(to: 2)
    }
    require(QueryParameters.decode(Substring(encoded)) == text, "percent-encoded \(text.debugDescription) did not decode to itself")
    let parsed = QueryParameters(uri: "/x?k=" + encoded + "&k=second")
    require(parsed?["k"] == text, "the first value of k was not \(text.debugDescription)")
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

runLibFuzzer(testOneInput)
