import COpenat2
#if canImport(Glibc)
import Glibc
#endif

/// A file being written in a folder before it has its final name: anonymous (O_TMPFILE,
/// gone by itself if the agent dies) or, where the filesystem lacks O_TMPFILE, under a
/// hidden random name. Internal to `AtomicFileWriter`, which owns the descriptors.
struct TemporaryFile: Sendable {
    /// Which kind to create; `.automatic` tries O_TMPFILE first.
    enum Kind: Sendable {
        case automatic
        case named
    }

    /// Open O_RDWR (read back when it must be copied to another filesystem).
    let descriptor: Int32
    /// The hidden name in its folder, or nil for an anonymous file.
    let name: String?

    /// Creates an empty temporary file in `folder`, mode 0644 whatever the umask.
    static func create(in folder: Int32, kind: Kind) throws(SystemError) -> TemporaryFile {
        var file: TemporaryFile?
        if kind == .automatic {
            let descriptor = openat(folder, ".", deckhand_O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                file = TemporaryFile(descriptor: descriptor, name: nil)
            } else if ![EOPNOTSUPP, EISDIR, EINVAL].contains(errno) {
                // Those three mean "no O_TMPFILE here" (overlayfs before 6.x, ...); others are real.
                throw SystemError(code: errno, operation: "create")
            }
        }
        if file == nil {
            file = try createNamed(in: folder)
        }
        // 0600 while it is written (a named one is visible in its folder meanwhile);
        // its mode for good is given when it is published.
        _ = fchmod(file!.descriptor, 0o600)
        return file!
    }

    /// The mode a file published as `finalName` in `destination` gets: a regular file's
    /// it replaces (less setuid, setgid and sticky: a private key stays private),
    /// else 0644.
    static func publishedMode(replacing finalName: String, in destination: Int32) -> mode_t {
        var existing = stat()
        guard fstatat(destination, finalName, &existing, AT_SYMLINK_NOFOLLOW) == 0, existing.st_mode & S_IFMT == S_IFREG else { return 0o644 }
        return existing.st_mode & 0o777
    }

    /// Gives the file the name `finalName` in `destination` (replacing what is there, but
    /// never a directory). Throws EXDEV when `destination` is on another filesystem than
    /// `folder`, the folder the file was created in.
    func publish(from folder: Int32, to destination: Int32, as finalName: String) throws(SystemError) {
        _ = fchmod(descriptor, Self.publishedMode(replacing: finalName, in: destination))
        if let name {
            try retryingInterrupts("rename") { renameat(folder, name, destination, finalName) }
            return
        }
        // An anonymous file cannot be renamed: link it under a hidden name, then rename
        // that, so an old file is replaced atomically rather than unlinked first.
        let linked = try linkAnonymous(into: destination)
        do {
            try retryingInterrupts("rename") { renameat(destination, linked, destination, finalName) }
        } catch {
            _ = unlinkat(destination, linked, 0)
            throw error
        }
    }

    /// Closes the file and removes its name, if it has one, from `folder`.
    func discard(in folder: Int32) {
        close(descriptor)
        if let name { _ = unlinkat(folder, name, 0) }
    }

    /// Copies the whole content of this file to the end of `other` (for a destination on
    /// another filesystem, where a rename cannot move it).
    func copyContent(to other: TemporaryFile) throws(SystemError) {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError(code: errno, operation: "read")
            }
            if count == 0 { return }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { Glibc.write(other.descriptor, $0.baseAddress! + written, count - written) }
                if result < 0 {
                    if errno == EINTR { continue }
                    throw SystemError(code: errno, operation: "write")
                }
                written += result
            }
            offset += off_t(count)
        }
    }

    /// linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; without it the /proc/self/fd
    /// link does the same.
    private func linkAnonymous(into folder: Int32) throws(SystemError) -> String {
        for _ in 0..<8 {
            let candidate = Self.randomName()
            if linkat(descriptor, "", folder, candidate, deckhand_AT_EMPTY_PATH) == 0 { return candidate }
            if errno == EEXIST { continue }
            if errno == EXDEV { throw SystemError(code: EXDEV, operation: "link") }
            if linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", folder, candidate, AT_SYMLINK_FOLLOW) == 0 { return candidate }
            if errno == EEXIST { continue }
            throw SystemError(code: errno, operation: "link")
        }
        throw SystemError(code: EEXIST, operation: "link")
    }

    private static func createNamed(in folder: Int32) throws(SystemError) -> TemporaryFile {
        for _ in 0..<8 {
            let candidate = randomName()
            let descriptor = openat(folder, candidate, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if descriptor >= 0 { return TemporaryFile(descriptor: descriptor, name: candidate) }
            if errno != EEXIST { throw SystemError(code: errno, operation: "create") }
        }
        throw SystemError(code: EEXIST, operation: "create")
    }

    /// A hidden name no client would choose, unique enough that O_EXCL rarely retries.
    static func randomName() -> String {
        ".deckhand-upload-" + String(UInt64.random(in: .min ... .max), radix: 16)
    }
}
