import Glibc
import Testing
@testable import HostFS

@Suite struct MakeDirectoriesTests {
    @Test(arguments: resolutions)
    func createsMissingParentsWithMode0755(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        try root.makeDirectories(path("a/b/c"))
        for folder in ["a", "a/b", "a/b/c"] {
            let entry = try root.entry(at: path(folder))
            #expect(entry.kind == .directory)
            #expect(entry.mode == 0o755)
        }
        // Existing folders are fine.
        try root.makeDirectories(path("a/b"))
        try root.makeDirectories(.root)
    }

    @Test(arguments: resolutions)
    func linksAreFollowedInsideTheRootOnly(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        try root.makeDirectories(path("slash/made"))
        try root.makeDirectories(path("up/up/made2"))
        #expect(tree.names(in: tree.rootPath).contains("made"))
        #expect(tree.names(in: tree.rootPath).contains("made2"))
        #expect(failure { try root.makeDirectories(path("outside-dir/x")) } == .notFound)
        #expect(failure { try root.makeDirectories(path("up-secret/x")) } == .notFound)
        #expect(failure { try root.makeDirectories(path("loop1/x")) } == .unfollowableLink)
        #expect(tree.names(in: tree.outsidePath) == ["secret.txt"])
        #expect(tree.names(in: tree.base) == ["outside", "root"])
    }

    @Test(arguments: resolutions)
    func aFileInTheWayIsNotADirectory(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.makeDirectories(path("dir/file.txt")) } == .notADirectory)
        #expect(failure { try root.makeDirectories(path("dir/file.txt/x")) } == .notADirectory)
        #expect(failure { try root.makeDirectories(path("fifo")) } == .notADirectory)
    }
}
