import NIOCore
import NIOHTTP1

/// `POST /browse/put[?volumeID=…]`, multipart with a `file` part and a `Path` part:
/// the body is not collected but streamed through an `UploadSession` into a
/// temporary file, renamed into place once complete.
struct BrowsePut: Sendable {
    let files: BrowseFiles

    /// The volume the request names, if any (nil for a malformed query: `session` refuses it).
    func volumeName(_ head: HTTPRequestHead) -> String? {
        QueryParameters(uri: head.uri).flatMap(files.volumeName)
    }

    /// The session that takes this request's body, into `volume` (as `VolumeMountpoints`
    /// found it) or the host; an `AgentError` refuses it.
    func session(for head: HTTPRequestHead, volume: FileBrowser.RequestedVolume?, on eventLoop: EventLoop) throws -> UploadSession {
        guard QueryParameters(uri: head.uri) != nil else { throw AgentError(.badRequest, "Malformed query string") }
        // Opening the root is a few openat calls: fine on the loop.
        let location = try files.browser.locate(volumeID: volume)
        return try UploadSession(
            contentType: head.headers.first(name: "Content-Type"), location: location,
            threadPool: files.threadPool, eventLoop: eventLoop)
    }
}
