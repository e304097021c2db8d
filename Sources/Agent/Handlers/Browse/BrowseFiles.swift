import NIOCore
import NIOPosix

/// What the `/browse/*` handlers share: the file browser, the volume a legacy
/// `/v1/browse/{volumeID}/…` path names, and the thread pool their file system calls
/// run on (never the event loop).
struct BrowseFiles: Sendable {
    let browser: FileBrowser
    let threadPool: NIOThreadPool
    let legacyVolumeID: String?

    /// Runs `operation` with the request's query and volume off the event loop; an
    /// `AgentError` becomes its JSON answer.
    func run(
        _ request: AgentRequest, on eventLoop: EventLoop,
        _ operation: @escaping @Sendable (_ query: QueryParameters, _ volumeID: String?) throws(AgentError) -> AgentResponse
    ) -> EventLoopFuture<AgentResponse> {
        guard let query = QueryParameters(uri: request.head.uri) else {
            return eventLoop.makeSucceededFuture(.error(AgentError(.badRequest, "Malformed query string")))
        }
        let volumeID = legacyVolumeID ?? query["volumeID"]
        return threadPool.runIfActive(eventLoop: eventLoop) { () throws(AgentError) -> AgentResponse in
            try operation(query, volumeID)
        }.recover { error in
            .error(error as? AgentError ?? AgentError(.internalServerError, "\(error)"))
        }
    }
}
