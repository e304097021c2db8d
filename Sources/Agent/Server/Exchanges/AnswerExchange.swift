import Glibc
import NIOCore
import NIOHTTP1

/// A request the agent answers itself (an agent route, or a list merged from every
/// node): optionally collects a small body first, asks the route's handler, then
/// writes the response, streaming a file body from disk with back-pressure.
final class AnswerExchange: ConnectionExchange {
    /// Bytes read from disk per step of a download.
    static let fileChunkSize: Int64 = 256 * 1024

    let connection: ConnectionHandler
    private var request: AgentRequest
    private let handler: any AgentHandler
    /// Collecting a small body before answering (e.g. a rename's JSON).
    private var collecting: Bool
    private var requestEnded = false
    private var responded = false
    /// The descriptor of a file being streamed, closed once done or on close.
    private var streamingFile: Int32?
    /// A read of the file is on the thread pool.
    private var readInFlight = false
    /// The file to close once that read has run (the exchange ended meanwhile).
    private var closeAfterRead: Int32?
    /// Continues a file stream once the client can take more.
    private var whenWritable: (() -> Void)?

    init(connection: ConnectionHandler, request: AgentRequest, handler: any AgentHandler, collectsBody: Bool) {
        self.connection = connection
        self.request = request
        self.handler = handler
        self.collecting = collectsBody
    }

    func start() {
        if !collecting { answer() }
    }

    func receive(_ body: ByteBuffer) {
        guard collecting else {
            return connection.dropBody(body.readableBytes, answered: responded)
        }
        var body = body
        let size = (request.body?.readableBytes ?? 0) + body.readableBytes
        if size > RouteTable.maxBodySize {
            collecting = false
            request.body = nil
            connection.closeAfterThisResponse()
            responded = true
            connection.writeResponse(.error(AgentError(.payloadTooLarge, "Request body too large", details: "at most \(RouteTable.maxBodySize) bytes")))
        } else if request.body == nil {
            request.body = body
        } else {
            request.body!.writeBuffer(&body)
        }
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        requestEnded = true
        if collecting {
            collecting = false
            answer()
        } else if responded {
            connection.finishExchange()
        }
    }

    func writabilityChanged(isWritable: Bool) {
        if isWritable, let next = whenWritable {
            whenWritable = nil
            next()
        }
    }

    func connectionClosed() {
        closeStreamingFile()
    }

    private func answer() {
        guard let context = connection.context else { return }
        // The channel's addresses, read once at accept: the context's ask the kernel each time.
        request.localAddress = context.channel.localAddress
        request.remoteAddress = context.channel.remoteAddress
        handler.respond(to: request, on: context.eventLoop).assumeIsolated().whenComplete { result in
            guard self.connection.context != nil, self.connection.exchange === self, !self.responded else {
                // Nobody to answer any more: an opened download must still be closed.
                if case .success(let response) = result, case .file(let file, _) = response.body { Glibc.close(file.descriptor) }
                return
            }
            let response: AgentResponse
            switch result {
            case .success(let success): response = success
            case .failure(let error): response = .error(AgentError(.internalServerError, "Internal error", details: "\(error)"))
            }
            // Answered before its body arrived: the agent did not need it, and does not
            // wait for it (a client could promise a body it never sends).
            let bodyUnread = self.connection.machine.requestBodyOpen
            if bodyUnread { self.connection.closeAfterThisResponse() }
            self.respond(response) {
                self.responded = true
                if self.requestEnded || self.connection.machine.droppedPastLimit {
                    self.connection.finishExchange()
                } else if bodyUnread {
                    self.connection.closeAfterLinger()
                }
            }
        }
    }

    /// Writes the response; `done` runs once all of it is written.
    private func respond(_ response: AgentResponse, then done: @escaping () -> Void) {
        guard case .file(let file, let range) = response.body else {
            connection.writeResponse(response)
            return done()
        }
        connection.write(.head(response.head(closing: connection.machine.closeAfterResponse)))
        if connection.machine.isHeadRequest {
            Glibc.close(file.descriptor)
            connection.write(.end(nil), flush: true)
            return done()
        }
        connection.context?.flush()
        streamingFile = file.descriptor
        streamFile(file.descriptor, from: range.lowerBound, remaining: Int64(range.count), then: done)
    }

    /// Reads the next chunk on the thread pool and writes it, then goes on as soon as
    /// the client can take more: memory stays at a chunk or two whatever the size.
    private func streamFile(_ fd: Int32, from offset: Int64, remaining: Int64, then done: @escaping () -> Void) {
        guard let context = connection.context else { return closeStreamingFile() }
        guard remaining > 0 else {
            closeStreamingFile()
            connection.write(.end(nil), flush: true)
            return done()
        }
        let size = Int(min(remaining, Self.fileChunkSize))
        let allocator = context.channel.allocator
        readInFlight = true
        connection.services.routes.threadPool.runIfActive(eventLoop: context.eventLoop) { () throws -> ByteBuffer in
            var buffer = allocator.buffer(capacity: size)
            _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { bytes in
                let count = pread(fd, bytes.baseAddress, size, off_t(offset))
                guard count > 0 else { throw IOError(errnoCode: count < 0 ? errno : EIO, reason: "pread") }
                return count
            }
            return buffer
        }.assumeIsolated().whenComplete { result in
            self.readInFlight = false
            if let closing = self.closeAfterRead {
                self.closeAfterRead = nil
                Glibc.close(closing)
            }
            guard let context = self.connection.context, self.streamingFile == fd else { return }
            switch result {
            case .success(let buffer):
                let count = Int64(buffer.readableBytes)
                self.connection.write(.body(.byteBuffer(buffer)), flush: true)
                let next = { self.streamFile(fd, from: offset + count, remaining: remaining - count, then: done) }
                if context.channel.isWritable { next() } else { self.whenWritable = next }
            case .failure(let error):
                // The file shrank or cannot be read: the promised length cannot be
                // delivered, and only closing tells the client so.
                self.connection.services.logger.warning("download failed", metadata: ["error": "\(error)"])
                self.closeStreamingFile()
                context.close(promise: nil)
            }
        }
    }

    /// Closes the file being sent, or, while a read of it is on the thread pool, has
    /// that read's end close it: a descriptor closed under a read still to run would be
    /// read by number, by then maybe another request's file.
    private func closeStreamingFile() {
        if let fd = streamingFile {
            if readInFlight { closeAfterRead = fd } else { Glibc.close(fd) }
            streamingFile = nil
        }
        whenWritable = nil
    }
}
