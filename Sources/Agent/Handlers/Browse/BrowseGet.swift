import NIOCore

/// `GET /browse/get?path=…[&volumeID=…]`: a file's bytes (ranges, conditional
/// requests), streamed from disk.
struct BrowseGet: AgentHandler {
    let files: BrowseFiles

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let (browser, headers) = (files.browser, request.head.headers)
        return files.run(request, on: eventLoop) { query, volumeID throws(AgentError) in
            try browser.download(volumeID: volumeID, path: query["path"], requestHeaders: headers)
        }
    }
}
