import NIOCore
import NIOHTTP1

/// `POST /browse/put[?volumeID=…]`, multipart with a `file` part and a `Path` part:
/// the body is not collected but streamed through an `UploadSession` into a
/// temporary file, renamed into place once complete.
struct BrowsePut: Sendable {
    let files: BrowseFiles

    /// The session that takes this request's body; an `AgentError` refuses it.
    func session(for head: HTTPRequestHead, on eventLoop: EventLoop) throws -> UploadSession {
        guard let query = QueryParameters(uri: head.uri) else { throw AgentError(.badRequest, "Malformed query string") }
        // Opening the root is one or two openat calls: fine on the loop.
        let location = try files.browser.locate(volumeID: files.legacyVolumeID ?? query["volumeID"])
        return try UploadSession(
            contentType: head.headers.first(name: "Content-Type"), location: location,
            threadPool: files.threadPool, eventLoop: eventLoop)
    }
}
