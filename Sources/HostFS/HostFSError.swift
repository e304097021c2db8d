#if canImport(Glibc)
import Glibc
#endif

/// Every way a HostFS operation can fail, one case per answer the HTTP layer gives.
/// Paths in the cases are as the client named them (relative to the root), never the
/// agent's own absolute paths, so messages can be shown to the client as they are.
public enum HostFSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request itself is wrong: a bad file name, volume name or path (HTTP 400).
    case invalidArgument(String)
    /// Nothing exists at `path` (HTTP 404). Also for a missing volume.
    case notFound(path: String)
    /// Something already exists at `path` and the operation will not replace it (HTTP 409).
    case alreadyExists(path: String)
    /// The operation would act on the root itself or leave it: removing or renaming the
    /// root, or a resolution the kernel refused as an escape (HTTP 403).
    case forbidden(path: String, reason: String)
    /// A symbolic link on the way loops, or is a /proc "magic" link the agent refuses to
    /// follow (HTTP 400).
    case unfollowableLink(path: String)
    /// A directory was needed and `path` (or a component of it) is something else (HTTP 400).
    case notADirectory(path: String)
    /// A regular file was needed and `path` is a directory (HTTP 400).
    case isADirectory(path: String)
    /// `path` is a FIFO, socket or device: listed, never opened for reading (HTTP 400).
    case specialFile(path: String, kind: EntryKind)
    /// The kernel refused the agent's access, or the filesystem is read-only (HTTP 403).
    case permissionDenied(path: String)
    /// Any other failure of `operation` on `path`, with the errno the kernel gave (HTTP 500).
    case io(path: String, operation: String, errno: Int32)
    /// The directory at `path` holds more entries than a listing gives (HTTP 422).
    case tooManyEntries(path: String, limit: Int)
    /// The names and link targets in the directory at `path` would make a listing of
    /// more than `limit` bytes (HTTP 422).
    case listingTooLarge(path: String, limit: Int)

    public var description: String {
        switch self {
        case .invalidArgument(let message):
            return message
        case .notFound(let path):
            return "\(path): no such file or directory"
        case .alreadyExists(let path):
            return "\(path): already exists"
        case .forbidden(let path, let reason):
            return "\(path): \(reason)"
        case .unfollowableLink(let path):
            return "\(path): too many levels of symbolic links, or a link that may not be followed"
        case .notADirectory(let path):
            return "\(path): not a directory"
        case .isADirectory(let path):
            return "\(path): is a directory"
        case .specialFile(let path, let kind):
            return "\(path): is a \(kind.displayName), only regular files can be read"
        case .permissionDenied(let path):
            return "\(path): permission denied"
        case .io(let path, let operation, let code):
            return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
        case .tooManyEntries(let path, let limit):
            return "\(path): holds more than \(limit) entries, more than a listing gives; open a folder inside it, or remove some"
        case .listingTooLarge(let path, let limit):
            return "\(path): its names and link targets come to more than \(limit >> 20) MiB, more than a listing gives; open a folder inside it, or remove some"
        }
    }

    /// Maps the errno of a failed call on `path` to the case the client should see.
    /// ELOOP and EXDEV are what openat2 answers for loops, magic links and escapes.
    static func from(errno code: Int32, path: String, operation: String) -> HostFSError {
        switch code {
        case ENOENT:
            return .notFound(path: path)
        case EEXIST, ENOTEMPTY:
            return .alreadyExists(path: path)
        case ENOTDIR:
            return .notADirectory(path: path)
        case EISDIR:
            return .isADirectory(path: path)
        case EACCES, EPERM, EROFS:
            return .permissionDenied(path: path)
        case ELOOP:
            return .unfollowableLink(path: path)
        case EXDEV:
            return .forbidden(path: path, reason: "resolves outside the root or across a boundary the agent does not cross")
        case EBUSY:
            return .forbidden(path: path, reason: "is in use (a mount point?)")
        case ENAMETOOLONG:
            return .invalidArgument("\(path): name too long")
        case EINVAL:
            return .invalidArgument("\(path): invalid argument for \(operation)")
        default:
            return .io(path: path, operation: operation, errno: code)
        }
    }
}
