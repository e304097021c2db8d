import CLibFuzzer
import HostFS
#if canImport(Glibc)
import Glibc
#endif

/// A real tree in a fresh temporary folder, planted the way a hostile container would
/// plant its volume (as Tests/HostFSTests/HostileTree.swift, with more kinds of link),
/// next to an `outside` folder that resolution beneath `root` must never reach. `root/proc`
/// is a real procfs (in the process's own mount namespace), so magic links
/// (`proc/self/root`, `proc/self/fd/N`) are there to be refused too; a process that
/// cannot mount it stops, rather than fuzz without magic links and still pass.
struct FuzzTree: Sendable {
    let base: String
    /// The root's real path, as /proc/self/fd shows the descriptors opened beneath it.
    let root: String
    /// The root opened for each way of resolving: the kernel's openat2, and the walk.
    let roots: [ConfinedRoot]

    /// Makes the tree in $TMPDIR (or /tmp). Call it before any thread starts: a process
    /// with several threads cannot make its own mount namespace.
    init() {
        let folder = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(folder)/deckhand-fuzz-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(errno)") }
        let real = realpath(made, nil)!
        base = String(cString: real)
        free(real)
        root = base + "/root"
        for folder in ["/outside", "/outside/dir", "/root", "/root/dir", "/root/dir/sub", "/root/etc", "/root/proc"] {
            Self.check(mkdir(base + folder, 0o755), folder)
        }
        Self.write("secret", to: base + "/outside/secret.txt")
        Self.write("hello", to: root + "/dir/file.txt")
        Self.write("deep", to: root + "/dir/sub/deep.txt")
        Self.write("confined hosts", to: root + "/etc/hosts")
        let links: [(String, String)] = [
            ("hosts", "/etc/hosts"), ("slash", "/"), ("up", "../../.."), ("dotdot", ".."), ("dot", "."),
            ("up-secret", "../outside/secret.txt"), ("outside-dir", base + "/outside"),
            ("outside-file", base + "/outside/secret.txt"), ("tmp", "/tmp"),
            ("environ", "/proc/self/environ"), ("proc-root", "/proc/self/root"), ("proc-cwd", "/proc/self/cwd"),
            ("proc-fd", "/proc/self/fd/0"), ("proc-init-root", "/proc/1/root"),
            ("loop1", "loop2"), ("loop2", "loop1"), ("self", "self"), ("reldir", "dir"), ("dangling", "nothing-here"),
            ("fifolink", "fifo"), ("slashes", "//dir//sub/"), ("file-slash", "dir/file.txt/"),
            ("file-dot", "dir/file.txt/."), ("file-dotdot", "dir/file.txt/.."),
            ("dir/sub/back", "../../.."), ("dir/sub/escape", "../../../outside/secret.txt"),
            ("dir/sub/abs", "/dir/sub"), ("dir/uplink", "../up"), ("dir/sub/to-fifo", "/fifolink"),
        ]
        for (name, target) in links { Self.check(symlink(target, root + "/" + name), name) }
        // 41 links in a chain: the kernel's limit, and the walk's, is 40.
        for index in 0...40 { Self.check(symlink(index == 40 ? "dir" : "chain\(index + 1)", root + "/chain\(index)"), "chain") }
        Self.check(mkfifo(root + "/fifo", 0o644), "fifo")
        Self.check(mknod(root + "/null", S_IFCHR | 0o666, (1 << 8) | 3), "null")
        Self.bindSocket(at: root + "/socket")
        Self.check(deckhand_fuzz_mount_proc(root + "/proc"), "a procfs at root/proc, without which magic links go untested")
        roots = [try! ConfinedRoot(path: root, resolution: .automatic), try! ConfinedRoot(path: root, resolution: .componentWalk)]
    }

    private static func write(_ text: String, to path: String) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        check(descriptor >= 0 ? 0 : -1, path)
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }

    private static func bindSocket(at path: String) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        check(result, "socket")
        // The descriptor stays open for the whole run, so the socket is a live one.
    }

    private static func check(_ result: Int32, _ what: String) {
        if result != 0 { fatalError("cannot build the fuzz tree (\(what)): errno \(errno)") }
    }

    /// Whether `descriptor` is open on the root or something beneath it.
    func isInside(_ descriptor: Int32) -> Bool {
        let path = Self.path(of: descriptor)
        return path == root || path.hasPrefix(root + "/")
    }

    /// What the kernel says `descriptor` is open on.
    static func path(of descriptor: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink("/proc/self/fd/\(descriptor)", &buffer, 4096)
        guard count >= 0 else { return "<unreadable: errno \(errno)>" }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Built before libFuzzer starts, kept for the whole run (it runs inputs in one process).
let tree = FuzzTree()
