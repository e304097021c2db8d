import NIOCore
import NIOHTTP1

/// An upload into a volume, waiting for the engine to say where the volume is
/// (`VolumeMountpoints`) before its session opens; then an `UploadExchange` (or the
/// refusal) takes over. Reads are paused meanwhile, so what is held here is at most
/// the body that came in the head's own read.
final class VolumeLookupExchange: ConnectionExchange {
    let connection: ConnectionHandler
    private let put: BrowsePut
    private let head: HTTPRequestHead
    private var held: [HTTPServerRequestPart] = []

    init(connection: ConnectionHandler, put: BrowsePut, head: HTTPRequestHead) {
        self.connection = connection
        self.put = put
        self.head = head
    }

    func start() {
        guard let context = connection.context else { return }
        connection.pauseReads()
        put.files.mountpoints.volume(named: put.volumeName(head), on: context.eventLoop).assumeIsolated().whenSuccess { volume in
            guard self.connection.context != nil, self.connection.exchange === self else { return }
            let upload = UploadExchange.make(connection: self.connection, put: self.put, head: self.head, volume: volume)
            self.connection.start(upload)
            // Reads resume first: the held parts may pause them again (a disk backlog).
            self.connection.resumeReads()
            for part in self.held {
                switch part {
                case .body(let body): upload.receive(body)
                case .end(let trailers): upload.receiveEnd(trailers)
                case .head: break
                }
            }
            self.held = []
        }
    }

    func receive(_ body: ByteBuffer) { held.append(.body(body)) }
    func receiveEnd(_ trailers: HTTPHeaders?) { held.append(.end(trailers)) }
}
