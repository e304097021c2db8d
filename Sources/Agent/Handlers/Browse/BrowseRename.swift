import NIOCore

/// `PUT /browse/rename[?volumeID=…]` with `{"CurrentFilePath": …, "NewFilePath": …}`:
/// the body is read whole first (`RouteTable.maxBodySize`).
struct BrowseRename: AgentHandler {
    let files: BrowseFiles

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        let (browser, body) = (files.browser, request.body.map { Array($0.readableBytesView) } ?? [])
        return files.run(request, on: eventLoop) { _, volumeID throws(AgentError) in
            try browser.rename(volumeID: volumeID, body: body)
        }
    }
}
