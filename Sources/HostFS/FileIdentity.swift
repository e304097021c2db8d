#if canImport(Glibc)
import Glibc
#endif

/// Which file a descriptor is open on: its device and inode. A directory reached again
/// another way (through `..`) is the one left behind only if its identity is the same.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    init(of descriptor: Int32) throws(SystemError) {
        self.init(try fileStatus(of: descriptor))
    }
}

/// Opens the parent (`..`) of the directory open as `directory`, with `flags`, and checks
/// that it is `expected`, the directory a walk came down from. A directory moved since
/// has another parent: EAGAIN, as openat2 answers when a rename races its `..`, rather
/// than climbing somewhere the walk never was.
func openParent(of directory: Int32, expecting expected: FileIdentity, flags: Int32) throws(SystemError) -> Int32 {
    let parent = try retryingInterrupts("open") { openat(directory, "..", flags | O_DIRECTORY | O_CLOEXEC) }
    do throws(SystemError) {
        guard try FileIdentity(of: parent) == expected else { throw SystemError(code: EAGAIN, operation: "open") }
        return parent
    } catch {
        close(parent)
        throw error
    }
}
