import NIOCore

/// `GET /browse/ls?path=…[&volumeID=…]`: a folder's entries, always a JSON array.
struct BrowseLs: AgentHandler {
    let files: BrowseFiles

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let browser = files.browser
        return files.run(request, on: eventLoop) { query, volumeID throws(AgentError) in
            try browser.list(volumeID: volumeID, path: query["path"])
        }
    }
}
