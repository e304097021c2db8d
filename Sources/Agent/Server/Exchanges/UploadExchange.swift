import NIOCore
import NIOHTTP1

/// A streaming upload (`POST /browse/put`): the multipart body goes to disk as it
/// arrives; reading pauses only while the disk is behind. Nothing is left half
/// written: a failure aborts the session, says why and hangs up rather than read the
/// rest of a possibly huge body.
final class UploadExchange: ConnectionExchange {
    let connection: ConnectionHandler
    private let session: UploadSession
    private let expectsContinue: Bool
    private let version: HTTPVersion
    /// Body bytes received, for the metrics.
    private var received = 0

    init(connection: ConnectionHandler, session: UploadSession, head: HTTPRequestHead) {
        self.connection = connection
        self.session = session
        self.expectsContinue = head.headers.first(name: "Expect")?.lowercased() == "100-continue"
        self.version = head.version
    }

    /// The upload of `put` into `volume` (or the host), or the refusal of it.
    static func make(connection: ConnectionHandler, put: BrowsePut, head: HTTPRequestHead, volume: FileBrowser.RequestedVolume?) -> ConnectionExchange {
        guard let eventLoop = connection.context?.eventLoop else { return DrainExchange(connection: connection, refusing: nil) }
        do {
            return UploadExchange(connection: connection, session: try put.session(for: head, volume: volume, on: eventLoop), head: head)
        } catch let error as AgentError {
            return DrainExchange(connection: connection, refusing: error)
        } catch {
            return DrainExchange(connection: connection, refusing: AgentError(.internalServerError, "\(error)"))
        }
    }

    func start() {
        if expectsContinue {
            connection.write(.head(HTTPResponseHead(version: version, status: .continue)), flush: true)
        }
    }

    func receive(_ body: ByteBuffer) {
        received += body.readableBytes
        // Reading goes on while the disk keeps up; only a backlog pauses it.
        guard let backlog = session.consume(body) else { return }
        connection.pauseReads()
        backlog.assumeIsolated().whenComplete { result in
            guard self.isCurrent else { return }
            switch result {
            case .success: self.connection.resumeReads()
            case .failure(let error): self.failed(error)
            }
        }
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        session.finish().assumeIsolated().whenComplete { result in
            guard self.isCurrent else { return }
            switch result {
            case .success:
                self.connection.services.metrics?.upload(stored: true, bytes: self.received)
                self.connection.writeResponse(.empty(.noContent))
                self.connection.finishExchange()
            case .failure(let error):
                self.failed(error)
            }
        }
    }

    func connectionClosed() {
        connection.services.metrics?.upload(stored: false, bytes: received)
        session.abort()
    }

    private var isCurrent: Bool { connection.context != nil && connection.exchange === self }

    private func failed(_ error: Error) {
        connection.services.metrics?.upload(stored: false, bytes: received)
        session.abort()
        connection.refuse(error as? AgentError ?? AgentError(.internalServerError, "Upload failed", details: "\(error)"), closingAtOnce: true)
    }
}
