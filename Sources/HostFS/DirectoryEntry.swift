/// One entry of a directory listing, as lstat(2) sees it: a symbolic link is reported as
/// a link (with its target), never as what it points at, so listing never follows links.
/// Portainer's JSON takes `Name` = `name`, `Size` = `size`, `Dir` = `isDirectory`,
/// `ModTime` = `modificationTime`; the other fields are additions.
public struct DirectoryEntry: Sendable, Hashable {
    /// The entry's name in its directory (invalid UTF-8 is shown with U+FFFD).
    public let name: String
    /// What the entry is; `.symlink` for a link whatever it points at.
    public let kind: EntryKind
    /// Size in bytes (for a link, the length of its target, as lstat says).
    public let size: Int64
    /// Last modification, in whole seconds since the Unix epoch.
    public let modificationTime: Int64
    /// Permission bits, including setuid/setgid/sticky (`st_mode & 0o7777`).
    public let mode: UInt32
    /// Where a symbolic link points, exactly as stored; nil for anything else.
    public let symlinkTarget: String?

    /// Whether the entry is a directory (not a link to one).
    public var isDirectory: Bool { kind == .directory }
    /// Whether the entry is a symbolic link.
    public var isSymlink: Bool { kind == .symlink }

    public init(name: String, kind: EntryKind, size: Int64, modificationTime: Int64, mode: UInt32, symlinkTarget: String?) {
        self.name = name
        self.kind = kind
        self.size = size
        self.modificationTime = modificationTime
        self.mode = mode
        self.symlinkTarget = symlinkTarget
    }
}
