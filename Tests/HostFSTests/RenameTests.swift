import Testing
@testable import HostFS

@Suite struct RenameTests {
    @Test(arguments: resolutions)
    func renamesInsideTheRoot(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        try root.rename(path("dir/file.txt"), to: path("dir/sub/moved.txt"))
        #expect(tree.read(tree.rootPath + "/dir/sub/moved.txt") == "hello")
        #expect(!tree.exists(tree.rootPath + "/dir/file.txt"))
        // Through a link to "/": the root's own folder.
        try root.rename(path("dir/sub/moved.txt"), to: path("slash/top.txt"))
        #expect(tree.read(tree.rootPath + "/top.txt") == "hello")
    }

    @Test(arguments: resolutions)
    func aLinkIsMovedNotItsTarget(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        try root.rename(path("outside-dir"), to: path("dir/renamed-link"))
        #expect(try root.entry(at: path("dir/renamed-link")).symlinkTarget == tree.outsidePath)
        #expect(tree.names(in: tree.outsidePath) == ["secret.txt"])
        #expect(tree.names(in: tree.base) == ["outside", "root"])
    }

    @Test(arguments: resolutions)
    func nothingMovesIntoOrOutOfTheRoot(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        // Out of the root: every destination resolves inside it, where there is no such folder.
        #expect(failure { try root.rename(path("dir/file.txt"), to: path("../../outside/stolen")) } == .notFound)
        #expect(failure { try root.rename(path("dir/file.txt"), to: path("outside-dir/stolen")) } == .notFound)
        #expect(failure { try root.rename(path("dir/file.txt"), to: path("up/outside/stolen")) } == .notFound)
        // Into the root: the sources resolve inside it too.
        #expect(failure { try root.rename(path("outside-dir/secret.txt"), to: path("stolen")) } == .notFound)
        #expect(failure { try root.rename(path("up-secret/../secret.txt"), to: path("stolen")) } == .notFound)
        #expect(failure { try root.rename(path("up/outside/secret.txt"), to: path("stolen")) } == .notFound)
        #expect(tree.names(in: tree.outsidePath) == ["secret.txt"])
        #expect(tree.names(in: tree.base) == ["outside", "root"])
        #expect(!tree.exists(tree.rootPath + "/stolen"))
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
    }

    @Test(arguments: resolutions)
    func anExistingDestinationIsKeptUnlessReplacingIsAsked(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        try tree.write("old", to: tree.rootPath + "/dir/sub/target.txt")
        #expect(failure { try root.rename(path("dir/file.txt"), to: path("dir/sub/target.txt")) } == .alreadyExists)
        #expect(tree.read(tree.rootPath + "/dir/sub/target.txt") == "old")
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        // A dangling link is an existing entry too.
        #expect(failure { try root.rename(path("dir/file.txt"), to: path("environ")) } == .alreadyExists)
        try root.rename(path("dir/file.txt"), to: path("dir/sub/target.txt"), replacingExisting: true)
        #expect(tree.read(tree.rootPath + "/dir/sub/target.txt") == "hello")
    }

    @Test(arguments: resolutions)
    func theRootCannotBeRenamed(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.rename(.root, to: path("x")) } == .forbidden)
        #expect(failure { try root.rename(path("dir"), to: .root) } == .alreadyExists)
        #expect(throws: HostFSError.invalidArgument("cannot move /dir into itself (/dir/sub/inside)")) {
            try root.rename(path("dir"), to: path("dir/sub/inside"))
        }
        #expect(failure { try root.rename(path("missing"), to: path("x")) } == .notFound)
    }
}
