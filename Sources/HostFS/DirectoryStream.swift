#if canImport(Glibc)
import Glibc
#endif

/// A directory read one entry at a time (`readdir`), owning its descriptor: what a walk
/// needs to go through a directory of any size without holding all of its names.
struct DirectoryStream: ~Copyable {
    /// One entry: its name as stored (NUL-terminated, not necessarily UTF-8), its inode
    /// and type as the directory records them (`DT_UNKNOWN` when the filesystem does not
    /// say), and the position to `seek(to:)` to read it again.
    struct Entry {
        let name: [CChar]
        let inode: UInt64
        let type: UInt8
        let position: Int
    }

    private let stream: OpaquePointer

    /// Takes ownership of `descriptor`, a directory opened for reading; closes it if the
    /// stream cannot be made.
    init(adopting descriptor: Int32) throws(SystemError) {
        guard let stream = fdopendir(descriptor) else {
            let code = errno
            close(descriptor)
            throw SystemError(code: code, operation: "opendir")
        }
        self.stream = stream
    }

    deinit { closedir(stream) }

    /// The directory's descriptor, for `*at` calls on its entries; owned by the stream.
    var descriptor: Int32 { dirfd(stream) }

    /// Goes back to the first entry.
    func rewind() { rewinddir(stream) }

    /// Goes to `position`, one an entry gave (a cookie of the filesystem's, valid across
    /// opens of the same directory on the filesystems Docker keeps volumes on).
    func seek(to position: Int) { seekdir(stream, position) }

    /// The next entry other than `.` and `..`, or nil at the end.
    func next() throws(SystemError) -> Entry? {
        while true {
            let position = telldir(stream)
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError(code: errno, operation: "readdir") }
                return nil
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) {
                    Array(UnsafeBufferPointer(start: $0, count: strlen($0) + 1))
                }
            }
            if name.isDotOrDotDot { continue }
            return Entry(name: name, inode: UInt64(entry.pointee.d_ino), type: entry.pointee.d_type, position: position)
        }
    }
}
