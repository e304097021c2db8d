import Glibc
import Testing
@testable import HostFS

@Suite struct ListTests {
    @Test(arguments: resolutions)
    func listsEntriesAsTheyAreWithoutFollowingThem(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let entries = try tree.root(resolution).list(.root)
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })

        #expect(entries.map(\.name) == entries.map(\.name).sorted())
        #expect(byName["dir"]?.kind == .directory)
        #expect(byName["dir"]?.isDirectory == true)
        #expect(byName["hosts"]?.kind == .symlink)
        #expect(byName["hosts"]?.isSymlink == true)
        #expect(byName["hosts"]?.isDirectory == false)
        #expect(byName["hosts"]?.symlinkTarget == "/etc/hosts")
        #expect(byName["slash"]?.symlinkTarget == "/")
        #expect(byName["outside-dir"]?.symlinkTarget == tree.outsidePath)
        #expect(byName["fifo"]?.kind == .fifo)
        #expect(byName["socket"]?.kind == .socket)
        #expect(byName["null"]?.kind == .characterDevice)
        #expect(byName["loop1"]?.kind == .symlink)
        #expect(byName["dir"]?.symlinkTarget == nil)
    }

    @Test(arguments: resolutions)
    func reportsSizeModeAndTime(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let file = try #require(try tree.root(resolution).list(path("dir")).first { $0.name == "file.txt" })
        #expect(file.kind == .file)
        #expect(file.size == 5)
        // Whatever the umask made of it, as the kernel reports it (022 gives 0o644).
        var status = stat()
        #expect(stat(tree.rootPath + "/dir/file.txt", &status) == 0)
        #expect(file.mode == UInt32(status.st_mode & 0o7777))
        let now = Int64(time(nil))
        #expect(abs(file.modificationTime - now) < 60)
    }

    @Test(arguments: resolutions)
    func linksToFoldersAreListedInsideTheRoot(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let rootNames = try root.list(.root).map(\.name)
        // "/" and "../../.." both mean the root itself, never the host's / or the base folder.
        #expect(try root.list(path("slash")).map(\.name) == rootNames)
        #expect(try root.list(path("up")).map(\.name) == rootNames)
        #expect(try root.list(path("..")).map(\.name) == rootNames)
        #expect(try root.list(path("reldir")).map(\.name) == ["file.txt", "sub"])
        #expect(try root.list(path("slash/slash/up/dir")).map(\.name) == ["file.txt", "sub"])
    }

    @Test(arguments: resolutions)
    func hostileTargetsAreRefused(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.list(path("outside-dir")) } == .notFound)
        #expect(failure { try root.list(path("loop1")) } == .unfollowableLink)
        #expect(failure { try root.list(path("self")) } == .unfollowableLink)
        #expect(failure { try root.list(path("dir/file.txt")) } == .notADirectory)
        #expect(failure { try root.list(path("fifo")) } == .notADirectory)
        #expect(failure { try root.list(path("missing")) } == .notFound)
    }

    @Test(arguments: resolutions)
    func entryDescribesTheLinkItself(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let entry = try root.entry(at: path("slash/hosts"))
        #expect(entry.kind == .symlink)
        #expect(entry.symlinkTarget == "/etc/hosts")
        #expect(try root.entry(at: .root).kind == .directory)
        #expect(failure { try root.entry(at: path("outside-dir/secret.txt")) } == .notFound)
    }

    @Test(arguments: resolutions)
    func aFolderWithMoreEntriesThanTheLimitIsRefusedNotHeld(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        // What "dir" holds, as libc's readdir counts it.
        let stream = try #require(opendir(tree.rootPath + "/dir"))
        var count = 0
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { count += 1 }
        }
        closedir(stream)
        #expect(count >= 2)
        #expect(try root.list(path("dir"), limit: count).count == count)
        #expect(failure { try root.list(path("dir"), limit: count - 1) } == .tooManyEntries)
    }

    @Test func theRootMustBeAnExistingFolder() throws {
        let tree = try HostileTree()
        #expect(failure { try ConfinedRoot(path: tree.base + "/missing") } == .notFound)
        #expect(failure { try ConfinedRoot(path: tree.rootPath + "/dir/file.txt") } == .notADirectory)
        #expect(failure { try ConfinedRoot(path: tree.rootPath + "\0/x") } == .invalidArgument)
        // The configured root itself may be a link: it is the agent's own setting.
        #expect(try ConfinedRoot(path: tree.rootPath + "/reldir").list(.root).map(\.name) == ["file.txt", "sub"])
    }
}
