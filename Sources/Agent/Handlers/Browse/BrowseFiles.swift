import NIOCore
import NIOPosix

/// What the `/browse/*` handlers share: the file browser, where the engine keeps the
/// volume a request names (asked first), the volume a legacy `/v1/browse/{volumeID}/…`
/// path names, and the thread pool their file system calls run on (never the event loop).
struct BrowseFiles: Sendable {
    let browser: FileBrowser
    let mountpoints: VolumeMountpoints
    let threadPool: NIOThreadPool
    let legacyVolumeID: String?

    /// The volume named by the legacy path or the `volumeID` parameter, if any.
    func volumeName(_ query: QueryParameters) -> String? {
        legacyVolumeID ?? query["volumeID"]
    }

    /// Runs `operation` with the request's query and volume off the event loop; an
    /// `AgentError` becomes its JSON answer.
    func run(
        _ request: AgentRequest, on eventLoop: EventLoop,
        _ operation: @escaping @Sendable (_ query: QueryParameters, _ volumeID: FileBrowser.RequestedVolume?) throws(AgentError) -> AgentResponse
    ) -> EventLoopFuture<AgentResponse> {
        guard let query = QueryParameters(uri: request.head.uri) else {
            return eventLoop.makeSucceededFuture(.error(AgentError(.badRequest, "Malformed query string")))
        }
        let threadPool = self.threadPool
        return mountpoints.volume(named: volumeName(query), on: eventLoop).flatMap { volume in
            threadPool.runIfActive(eventLoop: eventLoop) { () throws(AgentError) -> AgentResponse in
                try operation(query, volume)
            }
        }.recover { error in
            .error(error as? AgentError ?? AgentError(.internalServerError, "\(error)"))
        }
    }
}
