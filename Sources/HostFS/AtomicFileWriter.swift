import COpenat2
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file so that it appears whole or not at all. Bytes go to an anonymous
/// temporary file (O_TMPFILE) in the destination folder, or a hidden uniquely named one
/// where the filesystem lacks O_TMPFILE; `commit()` fsyncs and renames it onto the final
/// name (0644), replacing an old file atomically. `abort()`, or dropping the writer
/// uncommitted, removes the temporary file and leaves any old file as it was.
///
/// Methods block on disk I/O: call them from a thread pool. Sendable so a handler can pass
/// it to that pool; a mutex orders the calls, which are meant to come one at a time.
public final class AtomicFileWriter: Sendable {
    /// Which kind of temporary file to use; `.automatic` tries O_TMPFILE first.
    enum TemporaryFile: Sendable {
        case automatic
        case named
    }

    private enum Phase {
        case writing
        case committed
        case aborted
    }

    private struct State {
        var file: Int32
        var phase: Phase
        /// The temporary file's name in the folder once it has one (always for a named
        /// temporary file; for O_TMPFILE only between link and rename in `commit`).
        var temporaryName: String?
        var bytesWritten: Int64
    }

    /// The path the file gets at `commit()`, for messages and logs.
    public let destination: ConfinedPath
    /// The final name inside the folder.
    public let name: FileName
    private let directory: Int32
    private let state: Mutex<State>

    /// Takes ownership of `directory` (an O_RDONLY|O_DIRECTORY descriptor obtained
    /// confined) and creates the temporary file in it.
    init(directory: Int32, name: FileName, destination: ConfinedPath, temporaryFile: TemporaryFile) throws(HostFSError) {
        self.directory = directory
        self.name = name
        self.destination = destination
        var file: Int32 = -1
        var temporaryName: String?
        if temporaryFile == .automatic {
            file = openat(directory, ".", deckhand_O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o600)
            // EOPNOTSUPP/EISDIR/EINVAL: this filesystem (overlayfs before 6.x...) has no O_TMPFILE.
            if file < 0, ![EOPNOTSUPP, EISDIR, EINVAL].contains(errno) {
                throw HostFSError.from(errno: errno, path: destination.description, operation: "create")
            }
        }
        if file < 0 {
            (file, temporaryName) = try Self.createNamedTemporary(in: directory, destination: destination)
        }
        // Exactly 0644 whatever the umask: the mode the file will have once renamed.
        _ = fchmod(file, 0o644)
        state = Mutex(State(file: file, phase: .writing, temporaryName: temporaryName, bytesWritten: 0))
    }

    deinit {
        abort()
        close(directory)
    }

    /// How many bytes have been written so far.
    public var bytesWritten: Int64 {
        state.withLock { $0.bytesWritten }
    }

    /// Appends `bytes` to the temporary file (all of them, retrying short writes).
    /// Throws `io` (ENOSPC, EDQUOT, ...) or `invalidArgument` after commit/abort.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(HostFSError) {
        try state.withLock { (state: inout State) throws(HostFSError) in
            guard state.phase == .writing else {
                throw .invalidArgument("\(destination): the upload is already finished")
            }
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(state.file, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw HostFSError.from(errno: errno, path: destination.description, operation: "write")
                }
                offset += written
            }
            state.bytesWritten += Int64(bytes.count)
        }
    }

    /// Appends `bytes` to the temporary file; see `write(_: UnsafeRawBufferPointer)`.
    public func write(_ bytes: [UInt8]) throws(HostFSError) {
        let result: Result<Void, HostFSError> = bytes.withUnsafeBytes { buffer in
            do throws(HostFSError) {
                try write(buffer)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Makes the file visible under its final name: fsync, give it a name in the folder,
    /// rename onto `name` (replacing an old file, never a directory), fsync the folder.
    /// On failure the temporary file is removed and the old file is left as it was.
    public func commit() throws(HostFSError) {
        try state.withLock { (state: inout State) throws(HostFSError) in
            guard state.phase == .writing else {
                throw .invalidArgument("\(destination): the upload is already finished")
            }
            do throws(HostFSError) {
                if fsync(state.file) != 0 {
                    throw HostFSError.from(errno: errno, path: destination.description, operation: "fsync")
                }
                if state.temporaryName == nil {
                    state.temporaryName = try linkAnonymousFile(state.file)
                }
                if renameat(directory, state.temporaryName!, directory, name.value) != 0 {
                    throw HostFSError.from(errno: errno, path: destination.description, operation: "rename")
                }
                state.temporaryName = nil
                close(state.file)
                state.file = -1
                state.phase = .committed
                // The rename is durable only once the folder is: best effort.
                _ = fsync(directory)
            } catch {
                discard(&state)
                throw error
            }
        }
    }

    /// Drops what was written: closes and removes the temporary file. Does nothing after
    /// `commit()` or a previous `abort()`; never touches a file already at `name`.
    public func abort() {
        state.withLock { state in
            if state.phase == .writing { discard(&state) }
        }
    }

    private func discard(_ state: inout State) {
        if state.file >= 0 {
            close(state.file)
            state.file = -1
        }
        if let temporary = state.temporaryName {
            _ = unlinkat(directory, temporary, 0)
            state.temporaryName = nil
        }
        state.phase = .aborted
    }

    /// Gives the O_TMPFILE file a hidden name in the folder. linkat(AT_EMPTY_PATH) needs
    /// CAP_DAC_READ_SEARCH; without it, the /proc/self/fd link does the same.
    private func linkAnonymousFile(_ file: Int32) throws(HostFSError) -> String {
        for _ in 0..<8 {
            let candidate = Self.randomTemporaryName()
            if linkat(file, "", directory, candidate, deckhand_AT_EMPTY_PATH) == 0 { return candidate }
            if errno == EEXIST { continue }
            if linkat(AT_FDCWD, "/proc/self/fd/\(file)", directory, candidate, AT_SYMLINK_FOLLOW) == 0 { return candidate }
            if errno == EEXIST { continue }
            throw HostFSError.from(errno: errno, path: destination.description, operation: "link")
        }
        throw HostFSError.from(errno: EEXIST, path: destination.description, operation: "link")
    }

    private static func createNamedTemporary(in directory: Int32, destination: ConfinedPath) throws(HostFSError) -> (Int32, String) {
        for _ in 0..<8 {
            let candidate = randomTemporaryName()
            let file = openat(directory, candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if file >= 0 { return (file, candidate) }
            if errno != EEXIST {
                throw HostFSError.from(errno: errno, path: destination.description, operation: "create")
            }
        }
        throw HostFSError.from(errno: EEXIST, path: destination.description, operation: "create")
    }

    /// A hidden name no client would choose, unique enough that O_EXCL rarely retries.
    static func randomTemporaryName() -> String {
        ".deckhand-upload-" + String(UInt64.random(in: .min ... .max), radix: 16)
    }
}
