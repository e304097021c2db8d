import COpenat2
#if canImport(Glibc)
import Glibc
#endif

/// Opens paths beneath a root descriptor so that nothing outside the root is reached:
/// absolute links and `..` stop at the root, /proc magic links are refused.
/// Does not own `rootDescriptor`; the `ConfinedRoot` holding it does.
struct PathResolver: Sendable {
    let rootDescriptor: Int32
    let resolution: PathResolution

    /// The most links one resolution follows, as the kernel's own limit (MAXSYMLINKS).
    static let maximumLinks = 40
    /// How many times a resolution is tried when renames keep racing its `..` steps.
    static let attemptsAfterRenames = 16
    private static let dot: [CChar] = [46, 0]
    private static let dotDot: [CChar] = [46, 46, 0]

    /// Opens `path` with `flags` (O_CLOEXEC is added). A final symbolic link is followed,
    /// inside the root, unless `flags` has O_NOFOLLOW; with O_PATH|O_NOFOLLOW the link
    /// itself is opened. Returns a descriptor the caller owns.
    func open(_ path: ConfinedPath, flags: Int32) throws(SystemError) -> Int32 {
        let flags = flags | O_CLOEXEC
        if resolution == .automatic {
            let how = deckhand_RESOLVE_IN_ROOT | deckhand_RESOLVE_NO_MAGICLINKS
            let openFlags = UInt64(UInt32(bitPattern: flags))
            var attempts = 0
            while true {
                let descriptor = deckhand_openat2(rootDescriptor, path.relativeString, openFlags, 0, how)
                if descriptor >= 0 { return descriptor }
                let code = errno
                attempts += 1
                // EAGAIN: a concurrent rename raced the ".." checks; the kernel asks for a retry.
                if code == EINTR || (code == EAGAIN && attempts < Self.attemptsAfterRenames) { continue }
                // ENOSYS: a kernel older than 5.6. EPERM: also what seccomp profiles older
                // than openat2 answer for it (Docker's before 20.10). The walk is confined
                // too, and a real EPERM comes back from it all the same.
                if code == ENOSYS || code == EPERM { break }
                throw SystemError(code: code, operation: "open")
            }
        }
        // EAGAIN from the walk too: a directory moved while it climbed back out of it.
        var walks = 0
        while true {
            do throws(SystemError) {
                return try walk(path, flags: flags)
            } catch where error.code == EAGAIN && walks < Self.attemptsAfterRenames - 1 {
                walks += 1
            }
        }
    }

    /// The fallback: one component at a time, each opened with O_PATH|O_NOFOLLOW relative
    /// to the directory before it, so the kernel never follows a link or `..` for us.
    /// Links are read and their targets pushed back onto the walk (absolute ones restart
    /// at the root); `..` climbs back to the directory the walk came down from and stops at
    /// the root. Only the directory reached so far is held open, however deep the path:
    /// `..` is opened again and must be the directory recorded on the way down (EAGAIN if
    /// it was moved meanwhile).
    func walk(_ path: ConfinedPath, flags: Int32) throws(SystemError) -> Int32 {
        var current = try duplicateRoot()
        defer { close(current) }
        // The directories between the root and `current`, `current` last: empty at the root.
        var descent: [FileIdentity] = []

        // Pending components, last one first, so targets of links can be pushed in front.
        // NUL-terminated bytes: link targets need not be UTF-8 and must reach the kernel as
        // they are.
        var pending: [[CChar]] = path.components.reversed().map { Array($0.value.utf8CString) }
        var linksFollowed = 0
        let followFinalLink = flags & O_NOFOLLOW == 0

        while let component = pending.popLast() {
            if component == Self.dot { continue }
            if component == Self.dotDot {
                guard descent.popLast() != nil else { continue } // `..` of the root is the root
                let parent: Int32
                if let expected = descent.last {
                    parent = try openParent(of: current, expecting: expected, flags: deckhand_O_PATH)
                } else {
                    parent = try duplicateRoot()
                }
                close(current)
                current = parent
                continue
            }
            // Only the very last component is final: one followed by `.` (from a link target
            // such as `file/.` or `file/`) must be a directory, as for the kernel.
            let isFinal = pending.isEmpty
            let probe = try retryingInterrupts("open") {
                openat(current, component, deckhand_O_PATH | O_NOFOLLOW | O_CLOEXEC)
            }
            let status: stat
            do {
                status = try fileStatus(of: probe)
            } catch {
                close(probe)
                throw error
            }
            let kind = EntryKind(mode: status.st_mode)

            if kind == .symlink && (!isFinal || followFinalLink) {
                close(probe)
                linksFollowed += 1
                if linksFollowed > Self.maximumLinks { throw SystemError(code: ELOOP, operation: "open") }
                let target = try linkTarget(in: current, name: component)
                if target.first == UInt8(ascii: "/") {
                    // Absolute targets mean the root's "/", as in a chroot.
                    let root = try duplicateRoot()
                    close(current)
                    current = root
                    descent.removeAll()
                }
                // A trailing slash means "a directory": kept as a final `.`.
                if target.last == UInt8(ascii: "/") { pending.append(Self.dot) }
                pending.append(contentsOf: target.split(separator: UInt8(ascii: "/")).reversed().map {
                    $0.map { CChar(bitPattern: $0) } + [0]
                })
                continue
            }
            if isFinal {
                close(probe)
                // O_NOFOLLOW again: if the entry became a link since the probe, fail
                // (ELOOP) instead of following it.
                return try retryingInterrupts("open") { openat(current, component, flags | O_NOFOLLOW) }
            }
            guard kind == .directory else {
                close(probe)
                throw SystemError(code: ENOTDIR, operation: "open")
            }
            descent.append(FileIdentity(status))
            close(current)
            current = probe
        }
        // Nothing left, or only `..` and links leading back to a directory walked through.
        return try retryingInterrupts("open") { openat(current, ".", flags) }
    }

    /// A descriptor of the root the caller owns.
    private func duplicateRoot() throws(SystemError) -> Int32 {
        try retryingInterrupts("dup") { fcntl(rootDescriptor, F_DUPFD_CLOEXEC, 0) }
    }
}
