import Glibc
import Testing
@testable import HostFS

/// Names on disk need not be UTF-8 (a container may write Latin-1 names): such entries
/// are listed (shown with U+FFFD), removed with their folder, and links whose targets
/// are not UTF-8 are still followed byte for byte.
@Suite struct RawNameTests {
    /// `dir/caf\xE9/` holding `x\xFF.txt`, and `dir/to-cafe -> caf\xE9/x\xFF.txt`.
    func plantLatin1Names(_ tree: HostileTree) throws {
        let folder: [CChar] = Array((tree.rootPath + "/dir/caf").utf8CString.dropLast()) + [CChar(bitPattern: 0xE9), 0]
        #expect(mkdir(folder, 0o755) == 0)
        let file: [CChar] = folder.dropLast() + Array("/x".utf8CString.dropLast()) + [CChar(bitPattern: 0xFF)] + Array(".txt".utf8CString)
        let descriptor = open(file, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(descriptor >= 0)
        #expect(write(descriptor, "latin", 5) == 5)
        close(descriptor)
        let target: [CChar] = Array("caf".utf8CString.dropLast()) + [CChar(bitPattern: 0xE9)] + Array("/x".utf8CString.dropLast()) + [CChar(bitPattern: 0xFF)] + Array(".txt".utf8CString)
        #expect(symlink(target, tree.rootPath + "/dir/to-cafe") == 0)
    }

    @Test(arguments: resolutions)
    func listedFollowedAndRemoved(resolution: PathResolution) throws {
        let tree = try HostileTree()
        try plantLatin1Names(tree)
        let root = try tree.root(resolution)
        let names = try root.list(path("dir")).map(\.name)
        #expect(names == ["caf\u{FFFD}", "file.txt", "sub", "to-cafe"].sorted())
        #expect(contents(try root.openForReading(path("dir/to-cafe"))) == "latin")
        try root.remove(path("dir"))
        #expect(!tree.exists(tree.rootPath + "/dir"))
    }
}
