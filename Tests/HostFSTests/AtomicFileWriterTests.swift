import Glibc
import Testing
@testable import HostFS

@Suite struct AtomicFileWriterTests {
    static let cases: [(PathResolution, AtomicFileWriter.TemporaryFile)] = [
        (.automatic, .automatic), (.automatic, .named), (.componentWalk, .automatic), (.componentWalk, .named),
    ]

    @Test(arguments: cases)
    func writesChunksAndAppearsOnlyAtCommit(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let writer = try root.makeAtomicWriter(in: path("dir"), named: FileName("new.txt"), temporaryFile: temporary)
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
    func replacesAnExistingFileOnlyAtCommit(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        let writer = try tree.root(resolution).makeAtomicWriter(in: path("dir"), named: FileName("file.txt"), temporaryFile: temporary)
        try writer.write(Array("new content".utf8))
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        try writer.commit()
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "new content")
        #expect(tree.names(in: tree.rootPath + "/dir") == ["file.txt", "sub"])
    }

    @Test(arguments: cases)
    func abortLeavesNoTemporaryFileAndTheOldFileIntact(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        let writer = try tree.root(resolution).makeAtomicWriter(in: path("dir"), named: FileName("file.txt"), temporaryFile: temporary)
        try writer.write([UInt8](repeating: 0x41, count: 100_000))
        writer.abort()
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        #expect(tree.names(in: tree.rootPath + "/dir") == ["file.txt", "sub"])
        #expect(failure { try writer.write([1]) } == .invalidArgument)
        #expect(failure { try writer.commit() } == .invalidArgument)
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
    }

    @Test(arguments: cases)
    func aWriterDroppedWithoutCommitLeavesNothing(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        do {
            let writer = try tree.root(resolution).makeAtomicWriter(in: .root, named: FileName("half.bin"), temporaryFile: temporary)
            try writer.write([UInt8](repeating: 7, count: 4096))
        }
        #expect(!tree.exists(tree.rootPath + "/half.bin"))
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
    }

    @Test func theNamedTemporaryFileIsHiddenInTheDestinationFolder() throws {
        let tree = try HostileTree()
        let writer = try tree.root(.automatic).makeAtomicWriter(in: path("dir/sub"), named: FileName("x"), temporaryFile: .named)
        let names = tree.names(in: tree.rootPath + "/dir/sub")
        #expect(names.count == 1)
        #expect(names.allSatisfy { $0.hasPrefix(".deckhand-upload-") })
        writer.abort()
        #expect(tree.names(in: tree.rootPath + "/dir/sub").isEmpty)
    }

    @Test(arguments: cases)
    func writesStayInsideTheRoot(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.makeAtomicWriter(in: path("outside-dir"), named: FileName("x"), temporaryFile: temporary) } == .notFound)
        #expect(failure { try root.makeAtomicWriter(in: path("up-secret/.."), named: FileName("secret.txt"), temporaryFile: temporary).commit() } == .none)
        #expect(tree.read(tree.rootPath + "/secret.txt") == "")
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        // A link named like the upload is replaced by the file; its target is untouched.
        let writer = try root.makeAtomicWriter(in: .root, named: FileName("outside-dir"), temporaryFile: temporary)
        try writer.write(Array("replaced".utf8))
        try writer.commit()
        #expect(tree.read(tree.rootPath + "/outside-dir") == "replaced")
        #expect(tree.names(in: tree.outsidePath) == ["secret.txt"])
        #expect(tree.names(in: tree.base) == ["outside", "root"])
    }

    @Test(arguments: cases)
    func aFolderOfThatNameIsRefusedBeforeAnyByte(resolution: PathResolution, temporary: AtomicFileWriter.TemporaryFile) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.makeAtomicWriter(in: .root, named: FileName("dir"), temporaryFile: temporary) } == .isADirectory)
        #expect(failure { try root.makeAtomicWriter(in: path("dir/file.txt"), named: FileName("x"), temporaryFile: temporary) } == .notADirectory)
        #expect(failure { try root.makeAtomicWriter(in: path("missing"), named: FileName("x"), temporaryFile: temporary) } == .notFound)
    }

    @Test func aFolderCreatedDuringTheUploadFailsTheCommitAndLeavesNoTemporary() throws {
        let tree = try HostileTree()
        let root = try tree.root(.automatic)
        let writer = try root.makeAtomicWriter(in: .root, named: FileName("late"), temporaryFile: .named)
        try writer.write([1, 2, 3])
        try root.makeDirectories(path("late"))
        #expect(failure { try writer.commit() } == .isADirectory)
        #expect(try root.entry(at: path("late")).kind == .directory)
        #expect(!tree.names(in: tree.rootPath).contains { $0.hasPrefix(".deckhand") })
    }
}
