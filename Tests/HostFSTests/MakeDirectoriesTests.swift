import Foundation
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

    /// The kernel, not this code, says where it stops: a tmpfs with room for two more
    /// inodes refuses the third folder (ENOSPC), as `mkdir -p` on it shows.
    @Test func aFailurePartWayRemovesTheFoldersItMade() throws {
        try withTmpfsInRoot("small", options: "size=64k,nr_inodes=3") { rootPath, small in
            let root = try ConfinedRoot(path: rootPath)
            #expect(failure { try root.makeDirectories(path("small/a/b/c")) } == .io)
            #expect(try FileManager.default.contentsOfDirectory(atPath: small) == [])
            // With the room back, the same call makes all three and says so.
            #expect(try root.makeDirectories(path("small/a/b")) == [path("small/a"), path("small/a/b")])
            #expect(try root.makeDirectories(path("small/a/b")) == [])
        }
    }

    @Test func removingMadeFoldersKeepsWhatSomeoneElsePutThere() throws {
        try withTmpfsInRoot("small", options: "size=64k,nr_inodes=100") { rootPath, small in
            let root = try ConfinedRoot(path: rootPath)
            let made = try root.makeDirectories(path("small/x/y/z"))
            #expect(made == [path("small/x"), path("small/x/y"), path("small/x/y/z")])
            // Meanwhile another client puts a file in y, and swaps z for a link.
            #expect(FileManager.default.createFile(atPath: small + "/x/y/theirs.txt", contents: Data("kept".utf8)))
            try FileManager.default.removeItem(atPath: small + "/x/y/z")
            try FileManager.default.createSymbolicLink(atPath: small + "/x/y/z", withDestinationPath: "/")
            root.removeEmptyDirectories(made)
            #expect(try FileManager.default.contentsOfDirectory(atPath: small + "/x/y").sorted() == ["theirs.txt", "z"])
            // Once emptied, the same call removes them all.
            try FileManager.default.removeItem(atPath: small + "/x/y/theirs.txt")
            try FileManager.default.removeItem(atPath: small + "/x/y/z")
            root.removeEmptyDirectories(made)
            #expect(try FileManager.default.contentsOfDirectory(atPath: small) == [])
        }
    }
}
