import HostFS
import NIOCore
import NIOHTTP1
import Proxy

/// Where the engine keeps a volume's files, in its own words: `Mountpoint` of
/// `GET /volumes/{name}`. Podman keeps volumes elsewhere than Docker (and either can
/// be configured to), so the browser asks rather than assume `/var/lib/docker/volumes`.
struct VolumeMountpoints: Sendable {
    let engine: UpstreamPool

    /// The volume a browse request names, and where its engine keeps it: nil when the
    /// name is not a volume name, the engine does not know it or cannot be asked (the
    /// browser then looks in `DECKHAND_VOLUMES_ROOT`, as the stack files mount it).
    func volume(named name: String?, on eventLoop: EventLoop) -> EventLoopFuture<FileBrowser.RequestedVolume?> {
        guard let name, !name.isEmpty else { return eventLoop.makeSucceededFuture(nil) }
        guard VolumeRoot.isValidName(name) else { return eventLoop.makeSucceededFuture(.init(name: name, mountpoint: nil)) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/volumes/\(name)", headers: ["Host": "docker"])
        return engine.collect(head, on: eventLoop, limit: 1 << 20, timeout: .seconds(10)).map { response in
            guard response.head.status == .ok,
                  let volume = try? AgentJSON.decode(Inspected.self, from: response.body.readableBytesView) else {
                return FileBrowser.RequestedVolume(name: name, mountpoint: nil)
            }
            return FileBrowser.RequestedVolume(name: name, mountpoint: volume.Mountpoint)
        }.recover { _ in
            FileBrowser.RequestedVolume(name: name, mountpoint: nil)
        }
    }

    private struct Inspected: Decodable {
        var Mountpoint: String
    }
}
