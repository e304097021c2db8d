import Foundation
import Glibc
import Testing
@testable import HostFS

@Suite struct AtomicFileWriterTests {
    static let cases: [(PathResolution, TemporaryFile.Kind)] = [
        (.automatic, .automatic), (.automatic, .named), (.componentWalk, .automatic), (.componentWalk, .named),
    ]

    @Test(arguments: cases)
    func writesChunksAndAppearsOnlyAtCommit(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let writer = try root.makeAtomicWriter(in: path("dir"), named: FileName("new.txt"), kind: temporary)
        try writer.write(Array("hello, ".utf8))
        try writer.write(Array("world".utf8))
        #expect(writer.bytesWritten == 12)
        #expect(!tree.exists(tree.rootPath + "/dir/new.txt"))
        try writer.commit()
        #expect(tree.read(tree.rootPath + "/dir/new.txt") == "hello, world")
        let entry = try root.entry(at: path("dir/new.txt"))
        #expect(entry.mode == 0o644)
        #expect(entry.kind == .file)
        #expect(tree.names(in: tree.rootPath + "/dir") == ["file.txt", "new.txt", "sub"])
    }

    @Test(arguments: cases)
    func replacesAnExistingFileOnlyAtCommit(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let writer = try tree.root(resolution).makeAtomicWriter(in: path("dir"), named: FileName("file.txt"), kind: temporary)
        try writer.write(Array("new content".utf8))
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        try writer.commit()
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "new content")
        #expect(tree.names(in: tree.rootPath + "/dir") == ["file.txt", "sub"])
    }

    /// A replaced regular file's mode carries over (less setuid, setgid and sticky), as
    /// the kernel's stat reads it: a private file stays private. Before, every upload
    /// was 0644, so replacing a 0600 key made it world-readable. A named temporary file
    /// is 0600 while it is written.
    @Test(arguments: cases)
    func replacingKeepsTheReplacedFilesMode(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        for (mode, expected) in [(mode_t(0o600), mode_t(0o600)), (0o4755, 0o755), (0o640, 0o640)] {
            #expect(chmod(tree.rootPath + "/dir/file.txt", mode) == 0)
            let writer = try tree.root(resolution).makeAtomicWriter(in: path("dir"), named: FileName("file.txt"), kind: temporary)
            try writer.write(Array("private".utf8))
            for name in tree.names(in: tree.rootPath + "/dir") where name.hasPrefix(".deckhand") {
                var status = stat()
                #expect(stat(tree.rootPath + "/dir/" + name, &status) == 0 && status.st_mode & 0o7777 == 0o600, "\(name) while written")
            }
            try writer.commit()
            var status = stat()
            #expect(stat(tree.rootPath + "/dir/file.txt", &status) == 0)
            #expect(status.st_mode & 0o7777 == expected, "replacing \(String(mode, radix: 8)): \(String(status.st_mode & 0o7777, radix: 8))")
        }
    }

    @Test(arguments: cases)
    func abortLeavesNoTemporaryFileAndTheOldFileIntact(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let writer = try tree.root(resolution).makeAtomicWriter(in: path("dir"), named: FileName("file.txt"), kind: temporary)
        try writer.write([UInt8](repeating: 0x41, count: 100_000))
        writer.abort()
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        #expect(tree.names(in: tree.rootPath + "/dir") == ["file.txt", "sub"])
        #expect(failure { try writer.write([1]) } == .invalidArgument)
        #expect(failure { try writer.commit() } == .invalidArgument)
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
    }

    @Test(arguments: cases)
    func aWriterDroppedWithoutCommitLeavesNothing(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        do {
            let writer = try tree.root(resolution).makeAtomicWriter(in: .root, named: FileName("half.bin"), kind: temporary)
            try writer.write([UInt8](repeating: 7, count: 4096))
        }
        #expect(!tree.exists(tree.rootPath + "/half.bin"))
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
    }

    @Test func theNamedTemporaryFileIsHiddenInTheDestinationFolder() throws {
        let tree = try HostileTree()
        let writer = try tree.root(.automatic).makeAtomicWriter(in: path("dir/sub"), named: FileName("x"), kind: .named)
        let names = tree.names(in: tree.rootPath + "/dir/sub")
        #expect(names.count == 1)
        #expect(names.allSatisfy { $0.hasPrefix(".deckhand-upload-") })
        writer.abort()
        #expect(tree.names(in: tree.rootPath + "/dir/sub").isEmpty)
    }

    @Test(arguments: cases)
    func writesStayInsideTheRoot(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.makeAtomicWriter(in: path("outside-dir"), named: FileName("x"), kind: temporary) } == .notFound)
        #expect(failure { try root.makeAtomicWriter(in: path("up-secret/.."), named: FileName("secret.txt"), kind: temporary).commit() } == .none)
        #expect(tree.read(tree.rootPath + "/secret.txt") == "")
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        // A link named like the upload is replaced by the file; its target is untouched.
        let writer = try root.makeAtomicWriter(in: .root, named: FileName("outside-dir"), kind: temporary)
        try writer.write(Array("replaced".utf8))
        try writer.commit()
        #expect(tree.read(tree.rootPath + "/outside-dir") == "replaced")
        #expect(tree.names(in: tree.outsidePath) == ["secret.txt"])
        #expect(tree.names(in: tree.base) == ["outside", "root"])
    }

    @Test(arguments: cases)
    func aFolderOfThatNameIsRefusedBeforeAnyByte(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.makeAtomicWriter(in: .root, named: FileName("dir"), kind: temporary) } == .isADirectory)
        #expect(failure { try root.makeAtomicWriter(in: path("dir/file.txt"), named: FileName("x"), kind: temporary) } == .notADirectory)
        #expect(failure { try root.makeAtomicWriter(in: path("missing"), named: FileName("x"), kind: temporary) } == .notFound)
    }

    @Test func aFolderCreatedDuringTheUploadFailsTheCommitAndLeavesNoTemporary() throws {
        let tree = try HostileTree()
        let root = try tree.root(.automatic)
        let writer = try root.makeAtomicWriter(in: .root, named: FileName("late"), kind: .named)
        try writer.write([1, 2, 3])
        try root.makeDirectories(path("late"))
        #expect(failure { try writer.commit() } == .isADirectory)
        #expect(try root.entry(at: path("late")).kind == .directory)
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
    }
}

/// Uploads whose destination arrives after the content, as Portainer's do: the file part
/// comes before the `Path` field.
@Suite struct StagedAtomicFileWriterTests {
    @Test(arguments: AtomicFileWriterTests.cases)
    func theDestinationIsGivenAtCommit(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let writer = try root.makeAtomicWriter(kind: temporary)
        #expect(writer.plannedDestination == nil)
        try writer.write(Array("staged".utf8))
        #expect(failure { try writer.commit() } == .invalidArgument)
        writer.abort()
        let writer2 = try root.makeAtomicWriter(kind: temporary)
        try writer2.write(Array("staged".utf8))
        try root.makeDirectories(path("new/folder"))
        try writer2.commit(in: path("new/folder"), named: FileName("file.txt"))
        #expect(tree.read(tree.rootPath + "/new/folder/file.txt") == "staged")
        #expect(try root.entry(at: path("new/folder/file.txt")).mode == 0o644)
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
        #expect(tree.names(in: tree.rootPath + "/new/folder") == ["file.txt"])
    }

    @Test(arguments: AtomicFileWriterTests.cases)
    func aLateDestinationIsConfinedToo(resolution: PathResolution, temporary: TemporaryFile.Kind) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let writer = try root.makeAtomicWriter(kind: temporary)
        try writer.write(Array("x".utf8))
        #expect(failure { try writer.commit(in: path("outside-dir"), named: FileName("secret.txt")) } == .notFound)
        // A failed commit ends the upload and cleans up after it.
        #expect(failure { try writer.commit(in: .root, named: FileName("late.txt")) } == .invalidArgument)
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
        #expect(!tree.exists(tree.rootPath + "/late.txt"))
    }

    @Test func aDestinationOnAnotherFilesystemGetsACopy() throws {
        // The root is a temporary folder and the destination a tmpfs mounted inside it, so
        // the rename fails with EXDEV and the writer must copy. Both kinds in one test, one
        // after the other: a named temporary file in the root must not be seen by the other.
        for temporary in [TemporaryFile.Kind.automatic, .named] {
            try copiesAcrossFilesystems(temporary)
        }
    }

    func copiesAcrossFilesystems(_ temporary: TemporaryFile.Kind) throws {
        try withTmpfsInRoot("other-fs", options: "size=16m") { rootPath, folder in
            var rootStatus = stat(), folderStatus = stat()
            #expect(stat(rootPath, &rootStatus) == 0 && stat(folder, &folderStatus) == 0)
            try #require(rootStatus.st_dev != folderStatus.st_dev, "the tmpfs must be another filesystem than the root")

            let root = try ConfinedRoot(path: rootPath)
            let writer = try root.makeAtomicWriter(kind: temporary)
            let content = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try writer.write(content)
            try writer.commit(in: try ConfinedPath("/other-fs"), named: FileName("copied.bin"))
            #expect(FileManager.default.contents(atPath: folder + "/copied.bin").map(Array.init) == content)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["copied.bin"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: rootPath) == ["other-fs"])
        }
    }
}
