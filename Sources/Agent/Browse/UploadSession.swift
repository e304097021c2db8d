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
    /// The disk work queued so far; each chunk's writes run after the previous ones.
    private var pending: EventLoopFuture<Void>

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
        self.pending = eventLoop.makeSucceededVoidFuture()
    }

    /// Feeds one chunk of the body. The returned future completes when its bytes are
    /// on disk (the caller holds further reads until then) and fails with an
    /// `AgentError` for a bad body or a failed write.
    func consume(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let events: [MultipartEvent]
        do {
            events = try buffer.withUnsafeReadableBytes { bytes throws(MultipartError) in try parser.feed(bytes) }
        } catch {
            return fail(AgentError(.badRequest, "Invalid multipart body: \(error)"))
        }
        var chunks: [[UInt8]] = []
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
                case .file: chunks.append(bytes)
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
        if let writer, !chunks.isEmpty {
            pending = pending.flatMap { [threadPool, eventLoop] in
                threadPool.runIfActive(eventLoop: eventLoop) {
                    do {
                        for chunk in chunks { try writer.write(chunk) }
                    } catch let error as HostFSError {
                        throw AgentError(error)
                    }
                }
            }
        }
        return pending
    }

    /// The body ended: checks it was complete, then makes the folder and moves the
    /// file into place (fsync, rename).
    func finish() -> EventLoopFuture<Void> {
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
        let root = location.root
        return pending.flatMap { [threadPool, eventLoop] in
            threadPool.runIfActive(eventLoop: eventLoop) {
                do {
                    try root.makeDirectories(directory)
                    try writer.commit(in: directory, named: fileName)
                } catch let error as HostFSError {
                    writer.abort()
                    throw AgentError(error)
                }
            }
        }
    }

    /// Drops the staged file (a broken or refused upload), after queued writes.
    func abort() {
        guard let writer else { return }
        pending.whenComplete { [threadPool] _ in
            threadPool.submit { _ in writer.abort() }
        }
    }

    private func fail(_ error: AgentError) -> EventLoopFuture<Void> {
        abort()
        pending = eventLoop.makeFailedFuture(error)
        return pending
    }
}
