#if canImport(Glibc)
import Glibc
#endif

/// Removes a directory tree depth first, in a loop rather than a recursion, with the same
/// few descriptors whatever its depth: the top directory, the one being emptied, and for a
/// moment the next one. Of each level above the one being emptied it keeps where it came
/// from (an identity and a position, 24 bytes), never a name or a path.
///
/// The tree may change meanwhile (a container renaming its own folders): every directory
/// is entered from the one above with O_NOFOLLOW, so no link is ever followed; climbing
/// back goes through `..` and must find, by device and inode, the directory it came down
/// from, or the removal stops (EAGAIN) rather than go on somewhere it never was; the top
/// stays open throughout, so no new directory can take its identity. Entries are removed
/// only in directories reached that way.
enum TreeRemoval {
    /// A directory above the one being emptied, and where in it is the entry the removal
    /// went down into.
    private struct Level {
        let identity: FileIdentity
        let position: Int
    }

    /// Removes `name` in `directory` without following it: anything but a directory is
    /// unlinked (a link itself, never its target); a directory is emptied, then removed.
    /// `name` is NUL-terminated bytes as stored, so names that are not UTF-8 go too.
    static func remove(named name: [CChar], in directory: Int32) throws(SystemError) {
        let status = try linkStatus(in: directory, name: name)
        guard EntryKind(mode: status.st_mode) == .directory else {
            try retryingInterrupts("unlink") { unlinkat(directory, name, 0) }
            return
        }
        // O_NOFOLLOW: a link swapped in since the lstat fails (ELOOP) rather than being followed.
        let top = try retryingInterrupts("open") { openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        defer { close(top) }
        try empty(top)
        try retryingInterrupts("rmdir") { unlinkat(directory, name, AT_REMOVEDIR) }
    }

    /// Removes everything in the directory open as `top`, which stays open.
    static func empty(_ top: Int32) throws(SystemError) {
        var above: [Level] = []
        var identity = try FileIdentity(of: top)
        var directory = try DirectoryStream(adopting: retryingInterrupts("dup") { fcntl(top, F_DUPFD_CLOEXEC, 0) })
        // The inode of the directory just emptied, which the position kept for it should lead back to.
        var climbedFrom: UInt64?
        while true {
            var next = try directory.next()
            if let expected = climbedFrom {
                climbedFrom = nil
                if next?.inode != expected {
                    // Renamed meanwhile, or a filesystem whose positions do not survive a
                    // reopen: read this directory again from the start, skipping nothing.
                    directory.rewind()
                    next = try directory.next()
                }
            }
            guard let entry = next else {
                // This directory is empty: back to the one above, to remove it there.
                guard let level = above.popLast() else { return }
                let parent = try openParent(of: directory.descriptor, expecting: level.identity, flags: O_RDONLY)
                climbedFrom = identity.inode
                identity = level.identity
                directory = try DirectoryStream(adopting: parent)
                directory.seek(to: level.position)
                continue
            }
            if try removeUnlessFilledDirectory(entry, in: directory.descriptor) { continue }
            guard let child = try openDirectory(entry.name, in: directory.descriptor) else { continue }
            let childIdentity: FileIdentity
            do throws(SystemError) {
                childIdentity = try FileIdentity(of: child)
            } catch {
                close(child)
                throw error
            }
            above.append(Level(identity: identity, position: entry.position))
            identity = childIdentity
            directory = try DirectoryStream(adopting: child)
        }
    }

    /// Removes `entry` of `directory` unless it is a directory with something in it
    /// (false: it must be emptied first). Gone already counts as removed. Unlinking never
    /// removes a directory (EISDIR), so the recorded type only says which call to try first.
    private static func removeUnlessFilledDirectory(_ entry: DirectoryStream.Entry, in directory: Int32) throws(SystemError) -> Bool {
        if entry.type != UInt8(DT_DIR) {
            if unlinkat(directory, entry.name, 0) == 0 || errno == ENOENT { return true }
            if errno != EISDIR { throw SystemError(code: errno, operation: "unlink") }
        }
        if unlinkat(directory, entry.name, AT_REMOVEDIR) == 0 || errno == ENOENT { return true }
        switch errno {
        case ENOTEMPTY, EEXIST:
            return false
        case ENOTDIR:
            // Replaced by something else since it was read.
            if unlinkat(directory, entry.name, 0) == 0 || errno == ENOENT { return true }
            throw SystemError(code: errno, operation: "unlink")
        case let code:
            throw SystemError(code: code, operation: "rmdir")
        }
    }

    /// The subdirectory `name` of `directory`, opened to be read, never through a link;
    /// nil when it is gone meanwhile.
    private static func openDirectory(_ name: [CChar], in directory: Int32) throws(SystemError) -> Int32? {
        do throws(SystemError) {
            return try retryingInterrupts("open") { openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        } catch where error.code == ENOENT {
            return nil
        }
    }
}
