import COpenat2
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file so that it appears whole or not at all. Bytes go to a temporary file
/// (anonymous with O_TMPFILE, else hidden and uniquely named); `commit` fsyncs it and
/// renames it onto the final name (0644), replacing an old file atomically. `abort()`, a
/// failed commit, or dropping the writer uncommitted removes the temporary file and leaves
/// any old file as it was.
///
/// Two ways to start one, from `ConfinedRoot`:
/// - `makeAtomicWriter(in:named:)` when the destination is known: the temporary file is
///   in the destination folder; finish with `commit()`.
/// - `makeAtomicWriter()` when it is not yet known (Portainer sends the file part before
///   the `Path` field): the temporary file is in the root folder; finish with
///   `commit(in:named:)`, which moves it, or copies it if the folder is on another filesystem.
///
/// Methods block on disk I/O: call them from a thread pool. Sendable so a handler can pass
/// it to that pool; a mutex orders the calls, which are meant to come one at a time.
public final class AtomicFileWriter: Sendable {
    private enum Phase {
        case writing
        case committed
        case aborted
    }

    private struct State {
        var phase: Phase
        var bytesWritten: Int64
        /// Where the part not yet handed to write-back starts.
        var writeBackStart: Int64 = 0
    }

    /// The destination given at creation, if any: what `commit()` uses.
    public let plannedDestination: (directory: ConfinedPath, name: FileName)?
    /// Keeps the root's descriptor alive and resolves the destination at commit.
    private let root: ConfinedRoot
    /// The folder holding the temporary file (owned, closed in deinit).
    private let folder: Int32
    private let temporary: TemporaryFile
    private let kind: TemporaryFile.Kind
    private let state: Mutex<State>

    /// Takes ownership of `folder`, an O_RDONLY|O_DIRECTORY descriptor obtained confined
    /// beneath `root`, and creates the temporary file in it.
    init(
        root: ConfinedRoot, folder: Int32, folderPath: ConfinedPath,
        plannedName: FileName?, kind: TemporaryFile.Kind
    ) throws(HostFSError) {
        do {
            temporary = try TemporaryFile.create(in: folder, kind: kind)
        } catch {
            close(folder)
            throw error.mapped(to: plannedName.map { folderPath.appending($0) } ?? folderPath)
        }
        self.root = root
        self.folder = folder
        self.kind = kind
        self.plannedDestination = plannedName.map { (folderPath, $0) }
        state = Mutex(State(phase: .writing, bytesWritten: 0))
    }

    deinit {
        abort()
        close(folder)
    }

    /// How many bytes have been written so far.
    public var bytesWritten: Int64 {
        state.withLock { $0.bytesWritten }
    }

    /// Appends `bytes` to the temporary file (all of them, retrying short writes).
    /// Throws `io` (ENOSPC, EDQUOT, ...), or `invalidArgument` after commit or abort.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(HostFSError) {
        try state.withLock { (state: inout State) throws(HostFSError) in
            guard state.phase == .writing else { throw finished }
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(temporary.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw HostFSError.from(errno: errno, path: destinationDescription, operation: "write")
                }
                offset += written
            }
            state.bytesWritten += Int64(bytes.count)
            // Start writing back what has piled up, so the fsync at commit finds little
            // left to do and a large upload's disk time overlaps its network time.
            if state.bytesWritten - state.writeBackStart >= Self.writeBackStep {
                _ = deckhand_start_writeback(temporary.descriptor, state.writeBackStart, state.bytesWritten - state.writeBackStart)
                state.writeBackStart = state.bytesWritten
            }
        }
    }

    /// How much is written before asking the kernel to start writing it back.
    static let writeBackStep: Int64 = 8 << 20

    /// Appends `bytes` to the temporary file; see `write(_: UnsafeRawBufferPointer)`.
    public func write(_ bytes: [UInt8]) throws(HostFSError) {
        // withUnsafeBytes rethrows untyped errors: carry the typed one out in a Result.
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(HostFSError) in try write(buffer) }
        }
        try result.get()
    }

    /// Makes the file visible at the destination given at creation; see `commit(in:named:)`.
    /// Throws `invalidArgument` for a writer made without a destination.
    public func commit() throws(HostFSError) {
        guard let (directory, name) = plannedDestination else {
            throw .invalidArgument("the upload has no destination")
        }
        try commit(in: directory, named: name)
    }

    /// Makes the file visible as `name` in `directory` (resolved confined, now): fsync,
    /// rename onto `name` (replacing an old file, never a directory), fsync the folder.
    /// On failure the temporary file is removed and an old file is left as it was.
    public func commit(in directory: ConfinedPath, named name: FileName) throws(HostFSError) {
        let destination = directory.appending(name)
        try state.withLock { (state: inout State) throws(HostFSError) in
            guard state.phase == .writing else { throw finished }
            do throws(HostFSError) {
                if fsync(temporary.descriptor) != 0 {
                    throw HostFSError.from(errno: errno, path: destination.description, operation: "fsync")
                }
                let target = try root.openDirectory(directory)
                defer { close(target) }
                let moved = try publish(in: target, as: name, destination: destination)
                // The rename is durable only once the folder is: best effort.
                _ = fsync(target)
                if moved {
                    close(temporary.descriptor) // its name, if it had one, is now `name`
                } else {
                    temporary.discard(in: folder) // it was copied: remove the original
                }
                state.phase = .committed
            } catch {
                temporary.discard(in: folder)
                state.phase = .aborted
                throw error
            }
        }
    }

    /// Drops what was written: closes and removes the temporary file. Does nothing after
    /// `commit` or a previous `abort()`; never touches a file already at the destination.
    public func abort() {
        state.withLock { state in
            guard state.phase == .writing else { return }
            temporary.discard(in: folder)
            state.phase = .aborted
        }
    }

    /// Moves the temporary file onto `name` in `target` (true); across filesystems (EXDEV),
    /// copies it into a second temporary file there and moves that instead (false).
    private func publish(in target: Int32, as name: FileName, destination: ConfinedPath) throws(HostFSError) -> Bool {
        do {
            try temporary.publish(from: folder, to: target, as: name.value)
            return true
        } catch where error.code == EXDEV {
            // Falls through to the copy below.
        } catch {
            throw error.mapped(to: destination)
        }
        do throws(SystemError) {
            let copy = try TemporaryFile.create(in: target, kind: kind)
            do throws(SystemError) {
                try temporary.copyContent(to: copy)
                try retryingInterrupts("fsync") { fsync(copy.descriptor) }
                try copy.publish(from: target, to: target, as: name.value)
                close(copy.descriptor)
                return false
            } catch {
                copy.discard(in: target)
                throw error
            }
        } catch {
            throw error.mapped(to: destination)
        }
    }

    private var destinationDescription: String {
        plannedDestination.map { $0.directory.appending($0.name).description } ?? "upload"
    }

    private var finished: HostFSError {
        .invalidArgument("\(destinationDescription): the upload is already finished")
    }
}
