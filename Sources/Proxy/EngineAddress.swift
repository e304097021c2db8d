/// Where the Docker engine listens, written as `DOCKER_HOST` writes it:
/// `unix:///var/run/docker.sock` or `tcp://host[:port]` (a bare absolute path is a
/// unix socket, as `DECKHAND_ENGINE_SOCKET` always took it).
public enum EngineAddress: Sendable, Equatable, CustomStringConvertible {
    case unixSocket(path: String)
    /// Without a port in the address, the docker CLI's: 2376 with TLS, 2375 without.
    case tcp(host: String, port: Int?)

    /// Nil for anything else (`ssh://`, `npipe://`, a relative path, a bad port).
    public init?(_ text: String) {
        if text.hasPrefix("/") {
            guard !text.contains("\0") else { return nil }
            self = .unixSocket(path: text)
        } else if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/"), !path.contains("\0") else { return nil }
            self = .unixSocket(path: path)
        } else if text.hasPrefix("tcp://") {
            // host[:port] and [v6]:port, read as the cluster address reads one entry;
            // a trailing slash, as docker accepts it, is dropped.
            var rest = text.dropFirst("tcp://".count)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            guard !rest.contains(","), let parsed = ClusterAddress(String(rest)), let seed = parsed.seeds.first else { return nil }
            self = .tcp(host: seed.host, port: seed.port)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .unixSocket(let path): return "unix://\(path)"
        case .tcp(let host, let port):
            let name = host.contains(":") ? "[\(host)]" : host
            return port.map { "tcp://\(name):\($0)" } ?? "tcp://\(name)"
        }
    }

    /// The port a TCP address means, with or without TLS.
    public func port(tls: Bool) -> Int? {
        guard case .tcp(_, let port) = self else { return nil }
        return port ?? (tls ? 2376 : 2375)
    }
}
