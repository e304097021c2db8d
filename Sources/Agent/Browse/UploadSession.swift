import HostFS
import NIOCore
import NIOPosix

/// One streaming `POST /browse/put`: the multipart body is parsed on the event loop
/// as it arrives and the file's bytes are written, in order, on the thread pool into
/// a temporary file. Only a complete, well-formed body with both parts (`file` and
/// `Path`) becomes the named file, atomically; anything else leaves nothing behind.
///
/// Portainer sends the file part before `Path`, so the destination is known only at
/// the end: the writer stages in the root and is committed into place then.
final class UploadSession {
    /// `Path` is a folder name, never large.
    static let maxPathFieldSize = 4096

    private enum Part { case file, path, ignored }

    private var parser: MultipartParser
    private let location: FileBrowser.Location
    private let threadPool: NIOThreadPool
    private let eventLoop: EventLoop
    private var part = Part.ignored
    private var writer: AtomicFileWriter?
    private var fileName: FileName?
    private var pathField: [UInt8] = []
    private var sawPath = false
    /// File bytes parsed but not yet handed to the disk, and whether a batch is being written.
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var writing = false
    private var failure: AgentError?
    /// Completed when the backlog drops below `lowWater` (the caller then reads on).
    private var drained: EventLoopPromise<Void>?
    /// Completed when every queued byte is written (`finish` waits for it).
    private var idle: EventLoopPromise<Void>?

    /// Network and disk overlap: the next batch is parsed while the previous one is
    /// written, and reading stops only when this much is waiting.
    static let highWater = 8 << 20
    static let lowWater = 2 << 20

    init(contentType: String?, location: FileBrowser.Location, threadPool: NIOThreadPool, eventLoop: EventLoop) throws(AgentError) {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else {
            throw AgentError(.badRequest, "Expected a multipart/form-data body with a file part and a Path field")
        }
        do {
            parser = try MultipartParser(contentType: contentType)
        } catch {
            throw AgentError(.badRequest, "Invalid multipart body: \(error)")
        }
        self.location = location
        self.threadPool = threadPool
        self.eventLoop = eventLoop
    }

    /// Feeds one chunk of the body: parsed now, its file bytes queued for the disk.
    /// Returns nil when the caller may keep reading, or a future that completes once
    /// the backlog has drained (and fails with an `AgentError` for a bad body or a
    /// failed write).
    func consume(_ buffer: ByteBuffer) -> EventLoopFuture<Void>? {
        if let failure { return eventLoop.makeFailedFuture(failure) }
        let events: [MultipartEvent]
        do {
            events = try buffer.withUnsafeReadableBytes { bytes throws(MultipartError) in try parser.feed(bytes) }
        } catch {
            return fail(AgentError(.badRequest, "Invalid multipart body: \(error)"))
        }
        for event in events {
            switch event {
            case .partBegin(let headers):
                switch headers.name {
                case "file":
                    guard writer == nil else { return fail(AgentError(.badRequest, "Only one file may be uploaded per request")) }
                    guard let filename = headers.filename else {
                        return fail(AgentError(.badRequest, "The file part has no file name"))
                    }
                    do {
                        fileName = try FileName(filename)
                        // One openat(O_TMPFILE) in the root: cheap enough for the loop,
                        // and it keeps the writer owned by this loop from the start.
                        writer = try location.root.makeAtomicWriter()
                    } catch {
                        return fail(AgentError(error))
                    }
                    part = .file
                case "Path":
                    part = .path
                    sawPath = true
                default:
                    part = .ignored
                }
            case .body(let bytes):
                switch part {
                case .file:
                    queue.append(bytes)
                    queuedBytes += bytes.count
                case .path:
                    pathField += bytes
                    if pathField.count > Self.maxPathFieldSize {
                        return fail(AgentError(.badRequest, "The Path field is too long"))
                    }
                case .ignored: break
                }
            case .partEnd:
                part = .ignored
            case .end:
                break
            }
        }
        writeNextBatch()
        guard queuedBytes > Self.highWater else { return nil }
        let promise = drained ?? eventLoop.makePromise()
        drained = promise
        return promise.futureResult
    }

    /// Hands everything queued to the thread pool as one batch, if none is in flight.
    private func writeNextBatch() {
        guard !writing, !queue.isEmpty, failure == nil, let writer else { return }
        let batch = queue
        queue = []
        queuedBytes = 0
        writing = true
        threadPool.runIfActive(eventLoop: eventLoop) {
            do {
                for chunk in batch { try writer.write(chunk) }
            } catch let error as HostFSError {
                throw AgentError(error)
            }
        }.assumeIsolated().whenComplete { result in
            self.writing = false
            switch result {
            case .success:
                if self.queuedBytes <= Self.lowWater, let drained = self.drained {
                    self.drained = nil
                    drained.succeed()
                }
                self.writeNextBatch()
                if !self.writing, let idle = self.idle {
                    self.idle = nil
                    idle.succeed()
                }
            case .failure(let error):
                _ = self.fail(error as? AgentError ?? AgentError(.internalServerError, "\(error)"))
            }
        }
    }

    /// The body ended: checks it was complete, waits for the queued bytes, then makes
    /// the folder and moves the file into place (fsync, rename).
    func finish() -> EventLoopFuture<Void> {
        if let failure { return eventLoop.makeFailedFuture(failure) }
        do {
            try parser.finish()
        } catch {
            return fail(AgentError(.badRequest, "Invalid multipart body: \(error)"))
        }
        guard let writer, let fileName else { return fail(AgentError(.badRequest, "The body has no file part")) }
        guard sawPath else { return fail(AgentError(.badRequest, "The body has no Path field")) }
        let directory: ConfinedPath
        do {
            directory = try location.path(String(decoding: pathField, as: UTF8.self))
        } catch {
            return fail(error)
        }
        let written: EventLoopFuture<Void>
        if writing || !queue.isEmpty {
            let promise = idle ?? eventLoop.makePromise()
            idle = promise
            written = promise.futureResult
        } else {
            written = eventLoop.makeSucceededVoidFuture()
        }
        let root = location.root
        return written.flatMap { [threadPool, eventLoop] in
            threadPool.runIfActive(eventLoop: eventLoop) {
                // Folders made for this file go again if it cannot be put there.
                var made: [ConfinedPath] = []
                do {
                    made = try root.makeDirectories(directory)
                    try writer.commit(in: directory, named: fileName)
                } catch let error as HostFSError {
                    writer.abort()
                    root.removeEmptyDirectories(made)
                    throw AgentError(error)
                }
            }
        }
    }

    /// Drops the staged file (a broken or refused upload) once no write is in flight.
    func abort() {
        queue = []
        queuedBytes = 0
        guard let writer else { return }
        threadPool.submit { _ in writer.abort() }
    }

    private func fail(_ error: AgentError) -> EventLoopFuture<Void> {
        if failure == nil {
            failure = error
            abort()
            drained?.fail(error)
            idle?.fail(error)
            drained = nil
            idle = nil
        }
        return eventLoop.makeFailedFuture(error)
    }
}
