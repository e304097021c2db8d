import FoundationEssentials
import NIOCore

/// `POST /dockerhub` and `POST /v2/dockerhub`: Docker Hub's pull-rate limit for this
/// node, `{"remaining": N, "limit": N}`, as Portainer's image pages show it. The body
/// is Portainer's registry object (`api/http/proxy/factory/docker/transport.go`,
/// `proxyAgentRequest`): only `Authentication`, `Username` and `Password` are read, their
/// names matched without regard to case, as Go's JSON decoding does.
struct PostDockerHub: AgentHandler {
    let rateLimit: Result<DockerHubRateLimit, AgentError>

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let credentials: DockerHubRateLimit.Credentials?
        do {
            credentials = try Self.credentials(from: request.body.map { Array($0.readableBytesView) } ?? [])
        } catch {
            return eventLoop.makeSucceededFuture(.error(error))
        }
        let rateLimit: DockerHubRateLimit
        switch self.rateLimit {
        case .success(let success): rateLimit = success
        case .failure(let error): return eventLoop.makeSucceededFuture(.error(error))
        }
        return rateLimit.fetch(credentials: credentials, on: eventLoop)
            .flatMapThrowing { limit in .json(.ok, try AgentJSON.encode(limit)) }
            .recover { error in .error(error as? AgentError ?? AgentError(.badGateway, "Docker Hub", details: "\(error)")) }
    }

    /// The credentials to ask the token service with; nil for an anonymous token.
    static func credentials(from body: [UInt8]) throws(AgentError) -> DockerHubRateLimit.Credentials? {
        guard !body.isEmpty else { return nil }
        guard let object = try? JSONDecoder().decode([String: LooseValue].self, from: Data(body)) else {
            throw AgentError(.badRequest, "Invalid request payload", details: "expected Portainer's registry object (JSON)")
        }
        // Go matches a JSON key to a field without regard to case.
        func field(_ name: String) -> LooseValue? {
            object.filter { $0.key.lowercased() == name.lowercased() }.sorted { $0.key < $1.key }.last?.value
        }
        guard case .bool(true) = field("Authentication") else { return nil }
        guard case .string(let username) = field("Username"), !username.isEmpty,
              case .string(let password) = field("Password"), !password.isEmpty else {
            throw AgentError(.badRequest, "Invalid request payload", details: "Authentication is true without a Username and a Password")
        }
        return DockerHubRateLimit.Credentials(username: username, password: password)
    }
}

/// One value of Portainer's registry object: only booleans and strings are read.
private enum LooseValue: Decodable {
    case bool(Bool)
    case string(String)
    case other

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .other
        }
    }
}
