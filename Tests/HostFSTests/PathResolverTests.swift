import COpenat2
import Glibc
import Testing
@testable import HostFS

/// The component walk on its own (the fallback for kernels without openat2), and what
/// only the kernel's resolution can show (magic links), against the same hostile tree.
@Suite struct PathResolverTests {
    /// Runs `body` with a walking resolver over `tree`'s root, keeping the root (and so
    /// its descriptor) alive meanwhile.
    func withWalk(_ tree: HostileTree, _ body: (PathResolver) throws -> Void) throws {
        let root = try tree.root(.componentWalk)
        try withExtendedLifetime(root) {
            try body(PathResolver(rootDescriptor: root.descriptor, resolution: .componentWalk))
        }
    }

    /// The device and inode of what `descriptor` is open on, closing it.
    func identity(_ descriptor: Int32) throws -> [UInt64] {
        defer { close(descriptor) }
        let status = try fileStatus(of: descriptor)
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    func identity(ofPath path: String) -> [UInt64] {
        var status = stat()
        _ = lstat(path, &status)
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    @Test func theWalkResolvesLinksAsAChrootWould() throws {
        let tree = try HostileTree()
        try withWalk(tree) { (walk: PathResolver) throws in
            let hosts = identity(ofPath: tree.rootPath + "/etc/hosts")
            let root = identity(ofPath: tree.rootPath)
            #expect(try identity(walk.walk(path("hosts"), flags: O_RDONLY)) == hosts)
            #expect(try identity(walk.walk(path("slash"), flags: O_RDONLY)) == root)
            #expect(try identity(walk.walk(path("up"), flags: O_RDONLY)) == root)
            #expect(try identity(walk.walk(path("reldir/sub"), flags: O_RDONLY)) == identity(ofPath: tree.rootPath + "/dir/sub"))
            #expect(try identity(walk.walk(.root, flags: O_RDONLY)) == root)
        }
    }

    @Test func theWalkOpensAFinalLinkItselfWithNoFollow() throws {
        let tree = try HostileTree()
        try withWalk(tree) { (walk: PathResolver) throws in
            let link = try walk.walk(path("slash"), flags: deckhand_O_PATH | O_NOFOLLOW)
            #expect(try EntryKind(mode: fileStatus(of: link).st_mode) == .symlink)
            close(link)
            #expect(throws: SystemError.self) { try walk.walk(path("slash"), flags: O_RDONLY | O_NOFOLLOW) }
        }
    }

    @Test func theWalkStopsLoopsAndEscapes() throws {
        let tree = try HostileTree()
        try withWalk(tree) { (walk: PathResolver) throws in
            func code(_ text: String) -> Int32 {
                do {
                    close(try walk.walk(path(text), flags: O_RDONLY))
                    return 0
                } catch {
                    return error.code
                }
            }
            #expect(code("loop1") == ELOOP)
            #expect(code("self") == ELOOP)
            #expect(code("outside-dir") == ENOENT)
            #expect(code("up-secret") == ENOENT)
            #expect(code("environ") == ENOENT)
            #expect(code("dir/file.txt/x") == ENOTDIR)
            // 40 links is the limit, as for the kernel: a chain of 41 fails, 40 works.
            for index in 0..<41 {
                try tree.link("chain\(index)", to: index == 40 ? "dir" : "chain\(index + 1)")
            }
            #expect(code("chain1") == 0)
            #expect(code("chain0") == ELOOP)
        }
    }

    /// Found by the path-resolution fuzzer: the walk followed a link whose target ends in
    /// "/" or "/." to a plain file, where the kernel answers ENOTDIR.
    @Test func aLinkTargetEndingInASlashNamesADirectoryForBothResolutions() throws {
        let tree = try HostileTree()
        try tree.link("file-slash", to: "dir/file.txt/")
        try tree.link("file-dot", to: "dir/file.txt/.")
        try tree.link("dir-slash", to: "//dir//")
        for resolution in resolutions {
            let root = try tree.root(resolution)
            #expect(failure { try root.openForReading(path("file-slash")) } == .notADirectory, "\(resolution)")
            #expect(failure { try root.openForReading(path("file-dot")) } == .notADirectory, "\(resolution)")
            #expect(try root.list(path("dir-slash")).map(\.name) == ["file.txt", "sub"], "\(resolution)")
        }
    }

    @Test func theKernelRefusesMagicLinks() throws {
        // Only a root that contains a real /proc has magic links to refuse: the host's "/".
        let root = try ConfinedRoot(path: "/", resolution: .automatic)
        #expect(failure { try root.openForReading(path("/proc/self/root/etc/hostname")) } == .unfollowableLink)
        #expect(failure { try root.list(path("/proc/self/cwd")) } == .unfollowableLink)
        #expect(failure { try root.openForReading(path("/proc/self/fd/0")) } == .unfollowableLink)
    }

    @Test func theWalkReadsMagicLinksAsPlainLinksInsideTheRoot() throws {
        // The walk never lets the kernel follow a link: /proc/self/cwd is read as the path
        // it names and resolved from the root, here "/" itself.
        let root = try ConfinedRoot(path: "/", resolution: .componentWalk)
        let cwd = String(cString: getcwd(nil, 0))
        #expect(try root.list(path("/proc/self/cwd")).map(\.name) == root.list(path(cwd)).map(\.name))
    }
}
