import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Proxy

// The agent's own answers: whole responses, streamed downloads, streaming uploads.
extension ConnectionHandler {
    func answer(_ exchange: AgentExchange, context: ChannelHandlerContext) {
        exchange.request.localAddress = context.localAddress
        exchange.request.remoteAddress = context.remoteAddress
        deliver(exchange.handler.respond(to: exchange.request, on: context.eventLoop), for: exchange, context: context)
    }

    /// Writes the response `future` brings once it completes, if the exchange is still current.
    func deliver(_ future: EventLoopFuture<AgentResponse>, for exchange: AgentExchange, context: ChannelHandlerContext) {
        future.assumeIsolated().whenComplete { result in
            guard let context = self.context, case .agent(let current) = self.state, current === exchange, !exchange.responded else {
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
            let bodyUnread = self.requestBodyOpen
            if bodyUnread { self.closeAfterResponse = true }
            self.respond(response, context: context) {
                exchange.responded = true
                if exchange.requestEnded || self.droppedBodyBytes > Self.dropLimit {
                    self.finishAnswered(context: context)
                } else if bodyUnread {
                    self.closeAfterLinger(context: context)
                }
            }
        }
    }

    func startUpload(_ put: BrowsePut, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let session: UploadSession
        do {
            session = try put.session(for: head, on: context.eventLoop)
        } catch let error as AgentError {
            return refuse(error, context: context)
        } catch {
            return refuse(AgentError(.internalServerError, "\(error)"), context: context)
        }
        state = .upload(UploadExchange(session: session))
        if head.headers.first(name: "Expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
    }

    /// A refused or failed upload: nothing was written, say why and hang up rather
    /// than read the rest of a possibly huge body.
    func uploadFailed(_ error: Error, context: ChannelHandlerContext) {
        if case .upload(let upload) = state { upload.session.abort() }
        let agentError = error as? AgentError ?? AgentError(.internalServerError, "Upload failed", details: "\(error)")
        state = .draining
        closeAfterResponse = true
        respond(.error(agentError), context: context) {
            context.close(promise: nil)
        }
    }

    /// The agent's answer is written and the request has ended: ready for the next.
    func finishAnswered(context: ChannelHandlerContext) {
        state = .idle
        if closeAfterResponse || inputClosed && pipelined.isEmpty {
            context.close(promise: nil)
        } else {
            servePipelined(context: context)
        }
    }

    /// Writes an agent response, streaming a file body from disk; `then` runs once
    /// all of it is written. The request may still be streaming in; its remaining
    /// body is dropped.
    func respond(_ response: AgentResponse, context: ChannelHandlerContext, then done: @escaping () -> Void = {}) {
        var headers = response.headers
        AgentHeaders.add(to: &headers)
        headers.replaceOrAdd(name: "Content-Length", value: String(response.contentLength))
        if closeAfterResponse { headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        if isHeadRequest {
            if case .file(let file, _) = response.body { Glibc.close(file.descriptor) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return done()
        }
        switch response.body {
        case .bytes(let bytes):
            if !bytes.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            done()
        case .buffer(let buffer):
            if buffer.readableBytes > 0 {
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            done()
        case .file(let file, let range):
            context.flush()
            streamingFile = file.descriptor
            streamFile(file.descriptor, from: range.lowerBound, remaining: Int64(range.count), context: context, then: done)
        }
    }

    /// Reads the next chunk on the thread pool and writes it, then goes on as soon as
    /// the client can take more: memory stays at a chunk or two whatever the size.
    func streamFile(_ fd: Int32, from offset: Int64, remaining: Int64, context: ChannelHandlerContext, then done: @escaping () -> Void) {
        guard remaining > 0 else {
            closeStreamingFile()
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return done()
        }
        let size = Int(min(remaining, Self.fileChunkSize))
        let allocator = context.channel.allocator
        services.routes.threadPool.runIfActive(eventLoop: context.eventLoop) { () throws -> ByteBuffer in
            var buffer = allocator.buffer(capacity: size)
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { bytes in
                let count = pread(fd, bytes.baseAddress, size, off_t(offset))
                guard count > 0 else { throw IOError(errnoCode: count < 0 ? errno : EIO, reason: "pread") }
                return count
            }
            _ = count
            return buffer
        }.assumeIsolated().whenComplete { result in
            guard let context = self.context, self.streamingFile == fd else { return }
            switch result {
            case .success(let buffer):
                let count = Int64(buffer.readableBytes)
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                let next = { self.streamFile(fd, from: offset + count, remaining: remaining - count, context: context, then: done) }
                if context.channel.isWritable { next() } else { self.whenWritable = next }
            case .failure(let error):
                // The file shrank or cannot be read: the promised length cannot be
                // delivered, and only closing tells the client so.
                self.services.logger.warning("download failed", metadata: ["error": "\(error)"])
                self.closeStreamingFile()
                context.close(promise: nil)
            }
        }
    }

    func closeStreamingFile() {
        if let fd = streamingFile {
            Glibc.close(fd)
            streamingFile = nil
        }
        whenWritable = nil
    }
}
