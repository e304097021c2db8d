import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOSSL
import Proxy

/// An `https://host[:port][/path]` address from a setting: where Docker Hub's token
/// service or registry lives (tests point them at a stand-in).
struct HTTPSAddress: Sendable, Equatable, CustomStringConvertible {
    var host: String
    var port: Int
    /// Without a trailing `/`; empty for the root.
    var path: String

    init?(_ text: String) {
        guard text.hasPrefix("https://") else { return nil }
        let rest = text.dropFirst("https://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        guard !authority.isEmpty, !path.contains("?"), !path.contains("#"), !path.contains(" ") else { return nil }
        var host = Substring(authority)
        var port = 443
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()), (1...65535).contains(number) else { return nil }
                port = number
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65535).contains(number) else { return nil }
            port = number
            host = host[..<colon]
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":") }) else { return nil }
        self.host = String(host)
        self.port = port
        self.path = path
    }

    var description: String {
        let authority = host.contains(":") ? "[\(host)]" : host
        return "https://\(authority)\(port == 443 ? "" : ":\(port)")\(path)"
    }
}

/// Docker Hub's pull-rate limit as seen from this node, the way Docker documents it
/// (and the original agent reads it): a pull token for `ratelimitpreview/test` from the
/// token service (anonymous, or with the user's credentials), then a `HEAD` of that
/// repository's manifest, whose `ratelimit-limit` and `ratelimit-remaining` headers
/// (`100;w=21600`) say it. Every step is bounded by `timeout`.
struct DockerHubRateLimit: Sendable {
    var authService: HTTPSAddress
    var registry: HTTPSAddress
    var tls: NIOSSLContext
    var timeout: TimeAmount

    static let repository = "ratelimitpreview/test"

    struct Limit: Codable, Equatable {
        var remaining: Int
        var limit: Int
    }

    struct Credentials: Sendable {
        var username: String
        var password: String
    }

    func fetch(credentials: Credentials?, on eventLoop: EventLoop) -> EventLoopFuture<Limit> {
        let authPool = UpstreamPool(transport: .verifiedTLS(host: authService.host, port: authService.port, context: tls), connectTimeout: timeout)
        let registryPool = UpstreamPool(transport: .verifiedTLS(host: registry.host, port: registry.port, context: tls), connectTimeout: timeout)
        var tokenRequest = HTTPRequestHead(
            version: .http1_1, method: .GET,
            uri: "\(authService.path.isEmpty ? "/token" : authService.path)?service=registry.docker.io&scope=repository:\(Self.repository):pull")
        tokenRequest.headers.add(name: "Host", value: authService.host)
        if let credentials {
            let pair = Array("\(credentials.username):\(credentials.password)".utf8)
            tokenRequest.headers.add(name: "Authorization", value: "Basic \(Data(pair).base64EncodedString())")
        }
        return authPool.collect(tokenRequest, on: eventLoop, limit: 256 * 1024, timeout: timeout)
            .flatMapErrorThrowing { error in throw AgentError(.badGateway, "Unable to reach Docker Hub's token service", details: "\(self.authService): \(error)") }
            .flatMapThrowing { response -> String in
                switch response.head.status.code {
                case 200: break
                case 401, 403: throw AgentError(.unauthorized, "Docker Hub refused the credentials", details: "token service answered \(response.head.status.code)")
                default: throw AgentError(.badGateway, "Docker Hub's token service failed", details: "answered \(response.head.status.code)")
                }
                struct Token: Decodable {
                    var token: String?
                    var access_token: String?
                }
                guard let decoded = try? JSONDecoder().decode(Token.self, from: Data(response.body.readableBytesView)),
                      let token = decoded.token ?? decoded.access_token, !token.isEmpty,
                      token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw AgentError(.badGateway, "Docker Hub's token service answered without a token")
                }
                return token
            }
            .flatMap { token -> EventLoopFuture<CollectedResponse> in
                var head = HTTPRequestHead(version: .http1_1, method: .HEAD, uri: "\(self.registry.path)/v2/\(Self.repository)/manifests/latest")
                head.headers.add(name: "Host", value: self.registry.host)
                head.headers.add(name: "Authorization", value: "Bearer \(token)")
                head.headers.add(name: "Accept", value: "application/vnd.docker.distribution.manifest.v2+json")
                return registryPool.collect(head, on: eventLoop, limit: 256 * 1024, timeout: self.timeout)
                    .flatMapErrorThrowing { error in
                        throw AgentError(.badGateway, "Unable to reach Docker Hub's registry", details: "\(self.registry): \(error)")
                    }
            }
            .flatMapThrowing { response -> Limit in
                guard response.head.status == .ok else {
                    throw AgentError(.badGateway, "Docker Hub's registry did not say the rate limit", details: "answered \(response.head.status.code)")
                }
                guard let limit = Self.count(response.head.headers.first(name: "ratelimit-limit")),
                      let remaining = Self.count(response.head.headers.first(name: "ratelimit-remaining")) else {
                    throw AgentError(.badGateway, "Docker Hub's registry did not say the rate limit", details: "no ratelimit-limit / ratelimit-remaining headers")
                }
                return Limit(remaining: remaining, limit: limit)
            }
            .always { _ in
                authPool.closeIdle()
                registryPool.closeIdle()
            }
    }

    /// The count in `100;w=21600`: decimal digits before any `;`, at most 9 of them.
    static func count(_ value: String?) -> Int? {
        guard let value else { return nil }
        let digits = value.utf8.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard (1...9).contains(digits.count), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}
