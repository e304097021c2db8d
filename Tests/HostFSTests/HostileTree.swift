import Foundation
import Glibc
import Testing
@testable import HostFS

/// A real directory tree in a fresh temporary folder, laid out the way a hostile container
/// would plant it in its volume, next to an "outside" folder the root must never reach:
///
///     base/outside/secret.txt                "secret"
///     base/root/dir/file.txt                 "hello"
///     base/root/dir/sub/
///     base/root/etc/hosts                    "confined hosts"
///     base/root/hosts         -> /etc/hosts           (absolute: the root's /etc/hosts)
///     base/root/slash         -> /
///     base/root/up            -> ../../..
///     base/root/up-secret     -> ../outside/secret.txt
///     base/root/outside-dir   -> <absolute path of base/outside>
///     base/root/environ       -> /proc/self/environ
///     base/root/loop1 -> loop2, loop2 -> loop1, self -> self
///     base/root/reldir        -> dir
///     base/root/fifo, fifolink -> fifo, socket (bound unix socket), null (char device 1:3)
final class HostileTree {
    let base: String
    var rootPath: String { base + "/root" }
    var outsidePath: String { base + "/outside" }

    init() throws {
        var template = Array("/tmp/hostfs-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno)!) }
        base = String(cString: made)
        let files = FileManager.default
        try files.createDirectory(atPath: outsidePath, withIntermediateDirectories: true)
        try write("secret", to: outsidePath + "/secret.txt")
        try files.createDirectory(atPath: rootPath + "/dir/sub", withIntermediateDirectories: true)
        try files.createDirectory(atPath: rootPath + "/etc", withIntermediateDirectories: true)
        try write("hello", to: rootPath + "/dir/file.txt")
        try write("confined hosts", to: rootPath + "/etc/hosts")
        let links: [(String, String)] = [
            ("hosts", "/etc/hosts"),
            ("slash", "/"),
            ("up", "../../.."),
            ("up-secret", "../outside/secret.txt"),
            ("outside-dir", outsidePath),
            ("environ", "/proc/self/environ"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("self", "self"),
            ("reldir", "dir"),
            ("fifolink", "fifo"),
        ]
        for (name, target) in links {
            try link(name, to: target)
        }
        try check(mkfifo(rootPath + "/fifo", 0o644))
        try check(mknod(rootPath + "/null", S_IFCHR | 0o666, devNull))
        try bindSocket(at: rootPath + "/socket")
    }

    /// dev_t 1:3 (/dev/null) in glibc's encoding; makedev() is a macro Swift cannot see.
    private let devNull: dev_t = (1 << 8) | 3

    deinit {
        try? FileManager.default.removeItem(atPath: base)
    }

    func root(_ resolution: PathResolution) throws -> ConfinedRoot {
        try ConfinedRoot(path: rootPath, resolution: resolution)
    }

    func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    func link(_ name: String, to target: String, in folder: String? = nil) throws {
        try check(symlink(target, (folder ?? rootPath) + "/" + name))
    }

    /// lstat's view: whether anything (even a dangling link) is at `path`.
    func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Every name in `path`, hidden ones included, sorted.
    func names(in path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    private func check(_ result: Int32) throws {
        if result != 0 { throw POSIXError(.init(rawValue: errno)!) }
    }

    private func bindSocket(at path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try check(result)
    }
}

/// The case of a HostFS error, so tests can say which failure they expect without
/// repeating its message.
enum Failure: Equatable {
    case invalidArgument, notFound, alreadyExists, forbidden, unfollowableLink
    case notADirectory, isADirectory, specialFile, permissionDenied, io, tooManyEntries, listingTooLarge
    case none
    /// An error that is not a HostFSError: never expected.
    case foreign
}

extension HostFSError {
    var failure: Failure {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .forbidden: .forbidden
        case .unfollowableLink: .unfollowableLink
        case .notADirectory: .notADirectory
        case .isADirectory: .isADirectory
        case .specialFile: .specialFile
        case .permissionDenied: .permissionDenied
        case .io: .io
        case .tooManyEntries: .tooManyEntries
        case .listingTooLarge: .listingTooLarge
        }
    }
}

/// Which HostFS failure `body` ends with, or `.none` when it succeeds.
func failure<T>(_ body: () throws -> T) -> Failure {
    do {
        _ = try body()
        return .none
    } catch let error as HostFSError {
        return error.failure
    } catch {
        return .foreign
    }
}

/// A `ConfinedPath` from a literal the test knows to be valid.
func path(_ text: String) -> ConfinedPath {
    try! ConfinedPath(text)
}

/// The whole content of an opened file, closing its descriptor.
func contents(_ file: ReadableFile) -> String {
    defer { close(file.descriptor) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(file.descriptor, &buffer, buffer.count)
        if count <= 0 { break }
        bytes += buffer[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Both ways of resolving: the kernel's openat2 and the component walk fallback.
let resolutions: [PathResolution] = [.automatic, .componentWalk]

/// A temporary root folder holding a tmpfs (mounted with `options`) at `name`: another
/// filesystem inside the root, whose limits are the kernel's. Both go when `body` ends.
func withTmpfsInRoot(_ name: String, options: String, _ body: (_ rootPath: String, _ mounted: String) throws -> Void) throws {
    var template = Array((FileManager.default.temporaryDirectory.path + "/hostfs-root-XXXXXX").utf8CString)
    let made = try #require(mkdtemp(&template))
    let rootPath = String(cString: made)
    defer { _ = try? FileManager.default.removeItem(atPath: rootPath) }
    let mounted = rootPath + "/" + name
    try FileManager.default.createDirectory(atPath: mounted, withIntermediateDirectories: false)
    try #require(mount("tmpfs", mounted, "tmpfs", 0, options) == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
    defer { _ = umount2(mounted, Int32(MNT_DETACH)) }
    try body(rootPath, mounted)
}
