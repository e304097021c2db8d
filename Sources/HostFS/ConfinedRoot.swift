import COpenat2
#if canImport(Glibc)
import Glibc
#endif

/// A directory the agent may act in and never out of: a descriptor of the root, with every
/// path resolved beneath it by the kernel (`openat2`, `RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS`) and every change made with `*at` calls on descriptors obtained
/// that way. An absolute link inside means the root's `/`; `..` stops at the root.
///
/// All methods block on disk I/O: call them from a thread pool, not an event loop.
/// A class because it owns the descriptor and closes it when the last reference goes;
/// it is immutable after `init`, so sharing it between threads is safe.
public final class ConfinedRoot: Sendable {
    /// The root directory, opened O_RDONLY|O_DIRECTORY; owned, closed in `deinit`.
    let descriptor: Int32
    let resolver: PathResolver

    /// Opens the directory at `path` (the agent's own configuration, so links in it are
    /// followed as usual) as the root. Throws `notFound`, `notADirectory`, ...
    public init(path: String, resolution: PathResolution = .automatic) throws(HostFSError) {
        if path.utf8.contains(0) { throw .invalidArgument("a path may not contain a NUL byte") }
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor < 0 { throw HostFSError.from(errno: errno, path: path, operation: "open") }
        self.descriptor = descriptor
        self.resolver = PathResolver(rootDescriptor: descriptor, resolution: resolution)
    }

    /// Adopts an open directory descriptor (one this module obtained confined).
    init(adopting descriptor: Int32, resolution: PathResolution) {
        self.descriptor = descriptor
        self.resolver = PathResolver(rootDescriptor: descriptor, resolution: resolution)
    }

    deinit { close(descriptor) }

    /// How paths are resolved: `openat2`, or the component walk.
    public var resolution: PathResolution { resolver.resolution }

    // MARK: - Reading

    /// The most entries a listing gives: a directory that holds more (a container may
    /// make millions of files) is refused rather than held in memory whole.
    public static let maximumListing = 100_000
    /// The most bytes a listing's names and link targets may take once written as JSON
    /// (`jsonSize`): 100,000 names of 255 bytes fit, while a container's folder of
    /// links whose 4 KiB targets are control bytes (six bytes each in JSON) is refused
    /// rather than made into gigabytes.
    public static let maximumListingBytes = 32 << 20

    /// The entries of the directory at `path`, sorted by name. A link to a directory
    /// inside the root is followed to list it; the entries themselves are never followed.
    /// More than `limit` entries: `tooManyEntries`, after reading at most that many names;
    /// names and targets past `byteLimit` (`jsonSize`): `listingTooLarge`.
    public func list(_ path: ConfinedPath, limit: Int = maximumListing, byteLimit: Int = maximumListingBytes) throws(HostFSError) -> [DirectoryEntry] {
        enum Refusal: Error { case entries, bytes }
        let listed: Result<[DirectoryEntry], Refusal> = try mappingErrors(to: path) { () throws(SystemError) in
            let directory = try resolver.open(path, flags: O_RDONLY | O_DIRECTORY)
            defer { close(directory) }
            guard let names = try directoryNames(of: directory, atMost: limit) else { return .failure(.entries) }
            var entries: [DirectoryEntry] = []
            var bytes = 0
            for name in names {
                do throws(SystemError) {
                    let entry = try Self.entry(named: name, in: directory)
                    bytes += Self.jsonSize(entry.name) + (entry.symlinkTarget.map(Self.jsonSize) ?? 0)
                    guard bytes <= byteLimit else { return .failure(.bytes) }
                    entries.append(entry)
                } catch where error.code == ENOENT {
                    continue // removed while we listed: not an error
                }
            }
            return .success(entries.sorted { $0.name < $1.name })
        }
        switch listed {
        case .success(let entries): return entries
        case .failure(.entries): throw .tooManyEntries(path: path.description, limit: limit)
        case .failure(.bytes): throw .listingTooLarge(path: path.description, limit: byteLimit)
        }
    }

    /// How many bytes `text` takes as a JSON string's contents, at most: a control
    /// character is written as `\u00XX`, a quote or backslash escaped.
    static func jsonSize(_ text: String) -> Int {
        var size = 0
        for byte in text.utf8 {
            size += byte < 0x20 ? 6 : byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") ? 2 : 1
        }
        return size
    }

    /// The entry at `path` itself (a link is described, not followed); the root's entry
    /// is named "/".
    public func entry(at path: ConfinedPath) throws(HostFSError) -> DirectoryEntry {
        try mappingErrors(to: path) { () throws(SystemError) in
            guard let name = path.lastComponent else {
                let status = try fileStatus(of: descriptor)
                return Self.entry(name: "/", status: status, target: nil)
            }
            let parent = try resolver.open(path.parent, flags: deckhand_O_PATH | O_DIRECTORY)
            defer { close(parent) }
            return try Self.entry(named: Array(name.value.utf8CString), in: parent)
        }
    }

    /// Opens the regular file at `path` for reading, following a final link inside the
    /// root. A directory throws `isADirectory`; a FIFO, socket or device throws
    /// `specialFile` at once, without ever opening it for reading (no hang on a FIFO).
    public func openForReading(_ path: ConfinedPath) throws(HostFSError) -> ReadableFile {
        // First look with O_PATH: it never blocks and never opens the file's content.
        let probeStatus = try mappingErrors(to: path) { () throws(SystemError) in
            let probe = try resolver.open(path, flags: deckhand_O_PATH)
            defer { close(probe) }
            return try fileStatus(of: probe)
        }
        try Self.requireRegularFile(probeStatus, path)
        // Then open it; O_NONBLOCK so that even a FIFO swapped in since the probe cannot
        // block, and a check that it is still the file we looked at.
        let file = try mappingErrors(to: path) { () throws(SystemError) in
            try resolver.open(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY)
        }
        do throws(HostFSError) {
            let status = try mappingErrors(to: path) { () throws(SystemError) in try fileStatus(of: file) }
            try Self.requireRegularFile(status, path)
            guard status.st_dev == probeStatus.st_dev, status.st_ino == probeStatus.st_ino else {
                throw .notFound(path: path.description) // replaced while opening
            }
            let flags = fcntl(file, F_GETFL)
            _ = fcntl(file, F_SETFL, flags & ~O_NONBLOCK)
            return ReadableFile(
                descriptor: file,
                size: Int64(status.st_size),
                modificationTime: status.modificationSeconds,
                name: path.lastComponent?.value ?? "/"
            )
        } catch {
            close(file)
            throw error
        }
    }

    // MARK: - Changing

    /// Removes the entry at `path`: a file or a link (the link itself, never its target),
    /// or a directory with everything in it, however deep (see `TreeRemoval`). Links met
    /// inside are removed, not followed. The root itself cannot be removed (`forbidden`).
    /// A failure deep inside is blamed on `path`, the entry the client asked to remove.
    public func remove(_ path: ConfinedPath) throws(HostFSError) {
        guard let name = path.lastComponent else {
            throw .forbidden(path: path.description, reason: "the root cannot be removed")
        }
        try mappingErrors(to: path) { () throws(SystemError) in
            let parent = try resolver.open(path.parent, flags: deckhand_O_PATH | O_DIRECTORY)
            defer { close(parent) }
            try TreeRemoval.remove(named: Array(name.value.utf8CString), in: parent)
        }
    }

    /// Renames `source` to `destination`, both inside the root. Moves the entry itself (a
    /// link stays a link). Unless `replacingExisting`, an existing destination is left alone
    /// and `alreadyExists` thrown, decided atomically by the kernel (RENAME_NOREPLACE).
    public func rename(_ source: ConfinedPath, to destination: ConfinedPath, replacingExisting: Bool = false) throws(HostFSError) {
        guard let sourceName = source.lastComponent else {
            throw .forbidden(path: source.description, reason: "the root cannot be renamed")
        }
        guard let destinationName = destination.lastComponent else {
            throw .alreadyExists(path: destination.description)
        }
        let sourceParent = try mappingErrors(to: source) { () throws(SystemError) in
            try resolver.open(source.parent, flags: deckhand_O_PATH | O_DIRECTORY)
        }
        defer { close(sourceParent) }
        let destinationParent = try mappingErrors(to: destination) { () throws(SystemError) in
            try resolver.open(destination.parent, flags: deckhand_O_PATH | O_DIRECTORY)
        }
        defer { close(destinationParent) }
        let flags = replacingExisting ? 0 : deckhand_RENAME_NOREPLACE
        let result = deckhand_renameat2(sourceParent, sourceName.value, destinationParent, destinationName.value, flags)
        if result < 0 {
            let code = errno
            if code == EINVAL {
                // The one EINVAL a valid request can get: a folder moved into itself.
                throw .invalidArgument("cannot move \(source) into itself (\(destination))")
            }
            // Which path to blame: the source if it is missing, else the destination.
            let blamed = (code == ENOENT) ? source : destination
            throw HostFSError.from(errno: code, path: blamed.description, operation: "rename")
        }
    }

    /// Creates the directory at `path` and any missing parents (like `mkdir -p`), 0755,
    /// and returns those it made, outermost first. Existing directories, and links to
    /// directories inside the root, are fine; anything else in the way throws
    /// `notADirectory`. When it throws, the directories it made are removed again
    /// (`removeEmptyDirectories`): a failed call leaves the tree as it found it.
    @discardableResult
    public func makeDirectories(_ path: ConfinedPath) throws(HostFSError) -> [ConfinedPath] {
        var made: [ConfinedPath] = []
        do throws(HostFSError) {
            var current = ConfinedPath.root
            for name in path.components {
                let parentPath = current
                current = current.appending(name)
                let created = try mappingErrors(to: current) { () throws(SystemError) -> Bool in
                    let parent = try resolver.open(parentPath, flags: deckhand_O_PATH | O_DIRECTORY)
                    defer { close(parent) }
                    if mkdirat(parent, name.value, 0o755) == 0 {
                        // Exactly 0755 whatever the umask; O_NOFOLLOW so a link swapped in is not chmod-ed.
                        let created = openat(parent, name.value, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        if created >= 0 {
                            _ = fchmod(created, 0o755)
                            close(created)
                        }
                        return true
                    } else if errno != EEXIST {
                        throw SystemError(code: errno, operation: "mkdir")
                    }
                    return false
                }
                if created { made.append(current) }
            }
            // Whatever was there must now be a directory (or a link to one inside the root).
            try mappingErrors(to: path) { () throws(SystemError) in
                _ = close(try resolver.open(path, flags: deckhand_O_PATH | O_DIRECTORY))
            }
        } catch {
            removeEmptyDirectories(made)
            throw error
        }
        return made
    }

    /// Removes `paths` (what `makeDirectories` returned), innermost first, each only if
    /// it is still an empty directory: whatever someone put in one meanwhile stays, and
    /// so does the folder holding it. Failures are ignored; this only tidies up.
    public func removeEmptyDirectories(_ paths: [ConfinedPath]) {
        for path in paths.reversed() {
            guard let name = path.lastComponent,
                let parent = try? resolver.open(path.parent, flags: deckhand_O_PATH | O_DIRECTORY)
            else { continue }
            // AT_REMOVEDIR is rmdir: it fails on a file, a link or a folder that is not empty.
            _ = unlinkat(parent, name.value, AT_REMOVEDIR)
            close(parent)
        }
    }

    /// Starts writing the file `name` in the existing directory `directory`: the bytes go
    /// to a temporary file there and replace `name` only at `commit()`, so a broken upload
    /// leaves no partial file and any old file intact. An existing directory named `name`
    /// throws `isADirectory` now, before any byte is received.
    public func makeAtomicWriter(in directory: ConfinedPath, named name: FileName) throws(HostFSError) -> AtomicFileWriter {
        try makeAtomicWriter(in: directory, named: name, kind: .automatic)
    }

    /// Starts writing a file whose destination is not known yet (Portainer sends the file
    /// before the `Path` field): the temporary file is made in the root folder, and
    /// `commit(in:named:)` moves it (or copies it, across filesystems) into place.
    public func makeAtomicWriter() throws(HostFSError) -> AtomicFileWriter {
        try makeAtomicWriter(kind: .automatic)
    }

    /// `makeAtomicWriter(in:named:)` with the kind of temporary file forced (tests cover both).
    func makeAtomicWriter(in directory: ConfinedPath, named name: FileName, kind: TemporaryFile.Kind) throws(HostFSError) -> AtomicFileWriter {
        let folder = try openDirectory(directory)
        if let existing = try? linkStatus(in: folder, name: name.value), EntryKind(mode: existing.st_mode) == .directory {
            close(folder)
            throw .isADirectory(path: directory.appending(name).description)
        }
        return try AtomicFileWriter(root: self, folder: folder, folderPath: directory, plannedName: name, kind: kind)
    }

    /// `makeAtomicWriter()` with the kind of temporary file forced (tests cover both).
    func makeAtomicWriter(kind: TemporaryFile.Kind) throws(HostFSError) -> AtomicFileWriter {
        try AtomicFileWriter(root: self, folder: openDirectory(.root), folderPath: .root, plannedName: nil, kind: kind)
    }

    /// The directory at `path`, opened O_RDONLY (so it can be fsynced); the caller closes it.
    func openDirectory(_ path: ConfinedPath) throws(HostFSError) -> Int32 {
        try mappingErrors(to: path) { () throws(SystemError) in
            try resolver.open(path, flags: O_RDONLY | O_DIRECTORY)
        }
    }

    // MARK: - Helpers

    private func mappingErrors<T>(to path: ConfinedPath, _ body: () throws(SystemError) -> T) throws(HostFSError) -> T {
        do {
            return try body()
        } catch {
            throw error.mapped(to: path)
        }
    }

    private static func requireRegularFile(_ status: stat, _ path: ConfinedPath) throws(HostFSError) {
        switch EntryKind(mode: status.st_mode) {
        case .file:
            return
        case .directory:
            throw .isADirectory(path: path.description)
        case let kind:
            throw .specialFile(path: path.description, kind: kind)
        }
    }

    /// The entry `name` (NUL-terminated, as stored) in `directory`, not followed.
    private static func entry(named name: [CChar], in directory: Int32) throws(SystemError) -> DirectoryEntry {
        let status = try linkStatus(in: directory, name: name)
        var target: String?
        if EntryKind(mode: status.st_mode) == .symlink, let bytes = try? linkTarget(in: directory, name: name) {
            target = String(decoding: bytes, as: UTF8.self)
        }
        return entry(name: name.displayString, status: status, target: target)
    }

    private static func entry(name: String, status: stat, target: String?) -> DirectoryEntry {
        DirectoryEntry(
            name: name,
            kind: EntryKind(mode: status.st_mode),
            size: Int64(status.st_size),
            modificationTime: status.modificationSeconds,
            mode: UInt32(status.st_mode) & 0o7777,
            symlinkTarget: target
        )
    }
}
