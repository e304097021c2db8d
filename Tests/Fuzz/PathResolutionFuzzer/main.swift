import COpenat2
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif
@testable import HostFS

// Path resolution under a root: PathResolver (openat2 and the component walk) and
// ConfinedRoot's reading operations on a real tree full of hostile links (FuzzTree).
// Input: one byte choosing the open flags, then the path as a client would send it.
// Whatever opens must be inside the root; both resolutions must agree; no descriptor leaks.

/// Flags the agent opens with; never a blocking O_RDONLY (the tree has a FIFO).
let flagChoices: [Int32] = [
    deckhand_O_PATH, deckhand_O_PATH | O_NOFOLLOW, deckhand_O_PATH | O_DIRECTORY,
    O_RDONLY | O_NONBLOCK, O_RDONLY | O_NONBLOCK | O_NOFOLLOW, O_RDONLY | O_DIRECTORY,
]

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let flags = flagChoices[input.choice(below: flagChoices.count)]
    let text = String(decoding: input.rest(), as: UTF8.self)
    let lowestFree = lowestFreeDescriptor()

    guard let path = try? HostPathMapping.portainer.confinedPath(for: text) else { return 0 }
    require(path.components.allSatisfy { $0.value != "." && $0.value != ".." && !$0.value.contains("/") },
            "\(text.debugDescription) cleaned to \(path)")

    let roots = tree.roots
    let opened = roots.map { root in Result { () throws(SystemError) in try root.resolver.open(path, flags: flags) } }
    var identities: [[UInt64]] = []
    var onProcfs: [Bool] = []
    for result in opened {
        guard case .success(let descriptor) = result else { onProcfs.append(false); continue }
        require(tree.isInside(descriptor), "\(path) opened \(FuzzTree.path(of: descriptor)), outside \(tree.root)")
        var status = stat()
        fstat(descriptor, &status)
        identities.append([UInt64(status.st_dev), UInt64(status.st_ino)])
        onProcfs.append(procfsDevice == UInt64(status.st_dev))
        close(descriptor)
    }
    switch (opened[0], opened[1]) {
    case (.success, .success):
        require(identities[0] == identities[1], "openat2 and the walk opened different files for \(path)")
    case (.failure(let kernel), .success):
        // Only magic links differ: the kernel refuses them (ELOOP), the walk reads them as
        // plain links inside the root. And procfs is not the same for both: fd/N and
        // fdinfo/N of /proc/self name the resolver's own descriptors, which differ
        // between the two calls (the walk holds descriptors of its own), so the
        // kernel may find no such entry (ENOENT) where the walk finds one; what the walk
        // then opens is on procfs (found by the fuzzer: \x07proc/self/fd/6).
        require(kernel.code == ELOOP || kernel.code == ENOENT && onProcfs[1],
                "openat2 refused \(path) (errno \(kernel.code)) but the walk opened it")
    case (.success, .failure(let walk)):
        require(false, "the walk refused \(path) (errno \(walk.code)) but openat2 opened it")
    case (.failure, .failure):
        break
    }

    for root in roots {
        if let file = try? root.openForReading(path) {
            require(tree.isInside(file.descriptor), "openForReading(\(path)) read \(FuzzTree.path(of: file.descriptor))")
            close(file.descriptor)
        }
        if let entries = try? root.list(path) {
            require(entries.allSatisfy { !$0.name.isEmpty && $0.name != "." && $0.name != ".." && !$0.name.contains("/") },
                    "list(\(path)) gave names \(entries.map(\.name))")
        }
        _ = try? root.entry(at: path)
    }
    require(lowestFreeDescriptor() == lowestFree, "a descriptor leaked resolving \(path)")
    return 0
}

/// The device of the procfs mounted at `root/proc`, if it is.
let procfsDevice: UInt64? = {
    var status = stat()
    guard stat(tree.root + "/proc", &status) == 0 else { return nil }
    return UInt64(status.st_dev)
}()

/// The descriptor number the next open would get: it grows if one is left open.
func lowestFreeDescriptor() -> Int32 {
    let descriptor = dup(0)
    close(descriptor)
    return descriptor
}

// On standard error, unbuffered, with libFuzzer's own lines.
let banner = Array("fuzz tree at \(tree.base), procfs inside\n".utf8)
_ = banner.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
runLibFuzzer(testOneInput)
