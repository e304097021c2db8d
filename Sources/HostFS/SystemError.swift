#if canImport(Glibc)
import Glibc
#endif

/// A failed system call, before the caller knows which client path to blame it on.
/// Internal: every public entry point turns it into a `HostFSError` with `mapped(to:)`.
struct SystemError: Error {
    let code: Int32
    let operation: String

    /// The `HostFSError` a client sees for this failure on `path`.
    func mapped(to path: ConfinedPath) -> HostFSError {
        HostFSError.from(errno: code, path: path.description, operation: operation)
    }
}

/// Runs `call` until it stops failing with EINTR; throws the errno of any other failure.
/// Descriptors are Int32 and all the calls used here return -1 on failure.
@discardableResult
func retryingInterrupts(_ operation: String, _ call: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = call()
        if result >= 0 { return result }
        if errno != EINTR { throw SystemError(code: errno, operation: operation) }
    }
}

/// `fstat` of an open descriptor.
func fileStatus(of descriptor: Int32) throws(SystemError) -> stat {
    var status = stat()
    try retryingInterrupts("fstat") { fstat(descriptor, &status) }
    return status
}

/// `fstatat(directory, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never a link's target.
/// Names are C strings so that names read from the disk, which need not be UTF-8, are
/// passed back to the kernel byte for byte.
func linkStatus(in directory: Int32, name: UnsafePointer<CChar>) throws(SystemError) -> stat {
    var status = stat()
    try retryingInterrupts("lstat") { fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) }
    return status
}

/// The target of the symbolic link `name` in `directory`, as the bytes it holds.
func linkTarget(in directory: Int32, name: UnsafePointer<CChar>) throws(SystemError) -> [UInt8] {
    // PATH_MAX bounds what the kernel stores in a link.
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
    let count = buffer.withUnsafeMutableBytes { readlinkat(directory, name, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
    if count < 0 { throw SystemError(code: errno, operation: "readlink") }
    return Array(buffer[..<count])
}

/// The names in the directory open as `descriptor` (without `.` and `..`), unsorted, as
/// NUL-terminated bytes exactly as stored (not necessarily UTF-8).
/// Reads through a duplicate so the caller keeps ownership of `descriptor`.
func directoryNames(of descriptor: Int32, atMost limit: Int = .max) throws(SystemError) -> [[CChar]]? {
    let stream = try DirectoryStream(adopting: retryingInterrupts("dup") { fcntl(descriptor, F_DUPFD_CLOEXEC, 0) })
    // A duplicate shares the offset: start from the beginning whatever was read before.
    stream.rewind()
    var names: [[CChar]] = []
    while let entry = try stream.next() {
        // Past the limit nothing more is read: nil.
        guard names.count < limit else { return nil }
        names.append(entry.name)
    }
    return names
}

extension Array where Element == CChar {
    /// Whether this NUL-terminated name is `.` or `..`.
    var isDotOrDotDot: Bool { self == [46, 0] || self == [46, 46, 0] }

    /// The name for display: invalid UTF-8 is shown with U+FFFD (as Go's JSON does).
    var displayString: String {
        String(decoding: dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension stat {
    /// Modification time in whole Unix seconds, as Portainer's `ModTime` wants it.
    var modificationSeconds: Int64 { Int64(st_mtim.tv_sec) }
}
