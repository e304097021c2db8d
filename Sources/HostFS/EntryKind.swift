#if canImport(Glibc)
import Glibc
#endif

/// What a directory entry is, as lstat(2) sees it (a link is a link, not its target).
public enum EntryKind: String, Sendable, Hashable, Codable {
    case file
    case directory
    case symlink
    case fifo
    case socket
    case characterDevice
    case blockDevice
    case unknown

    /// The kind in words, for messages ("a FIFO", "a character device").
    public var displayName: String {
        switch self {
        case .file: "regular file"
        case .directory: "directory"
        case .symlink: "symbolic link"
        case .fifo: "FIFO"
        case .socket: "socket"
        case .characterDevice: "character device"
        case .blockDevice: "block device"
        case .unknown: "file of unknown type"
        }
    }

    /// The kind of the file whose `st_mode` is `mode`.
    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .file
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .unknown
        }
    }
}
