/// A regular file opened for reading beneath a `ConfinedRoot`, ready to stream.
/// The caller owns `descriptor` and must close it exactly once: hand it to
/// `NIOFileHandle(descriptor:)` (which then closes it) or call `close(descriptor)`.
public struct ReadableFile: Sendable {
    /// Open with O_RDONLY|O_CLOEXEC, blocking, positioned at offset 0; a regular file.
    public let descriptor: Int32
    /// Size in bytes when it was opened (fstat of this descriptor).
    public let size: Int64
    /// Last modification, in whole seconds since the Unix epoch (for Last-Modified).
    public let modificationTime: Int64
    /// The name the client asked for (the link's name when it asked for a link), for
    /// Content-Disposition and the Content-Type guess.
    public let name: String
}
