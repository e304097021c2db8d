import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1

/// Finds the cluster address when none is configured: an agent deployed as a Swarm
/// service runs in a container whose hostname is its container ID, and whose labels
/// name its service; Swarm's DNS resolves `tasks.<service>` to every agent task.
public enum ServiceDiscovery {
    private struct Container: Decodable {
        struct Config: Decodable { var Labels: [String: String]? }
        var Config: Config?
    }

    /// `tasks.<service>` for the service this process's container belongs to, or nil
    /// when it is not a Swarm task (or the engine does not know the container).
    public static func clusterAddress(from engine: UpstreamPool, on eventLoop: EventLoop) -> EventLoopFuture<ClusterAddress?> {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return eventLoop.makeSucceededFuture(nil) }
        let hostname = String(cString: name)
        guard !hostname.isEmpty, hostname.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { return eventLoop.makeSucceededFuture(nil) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/containers/\(hostname)/json", headers: ["Host": "docker"])
        return engine.collect(head, on: eventLoop, limit: 4 << 20, timeout: .seconds(5)).map { response in
            guard response.head.status == .ok,
                  let container = try? JSONDecoder().decode(Container.self, from: Data(response.body.readableBytesView)),
                  let service = container.Config?.Labels?["com.docker.swarm.service.name"]
            else { return nil }
            return ClusterAddress("tasks.\(service)")
        }.recover { _ in nil }
    }
}
