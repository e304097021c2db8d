import NIOCore

/// `DELETE /browse/delete?path=…[&volumeID=…]`: a file, or a folder and all it holds.
struct BrowseDelete: AgentHandler {
    let files: BrowseFiles

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let browser = files.browser
        return files.run(request, on: eventLoop) { query, volumeID throws(AgentError) in
            try browser.delete(volumeID: volumeID, path: query["path"])
        }
    }
}
