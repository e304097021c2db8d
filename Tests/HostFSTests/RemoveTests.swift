import Testing
@testable import HostFS

@Suite struct RemoveTests {
    @Test(arguments: resolutions)
    func removingALinkLeavesItsTarget(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        for name in ["hosts", "slash", "up", "up-secret", "outside-dir", "environ", "loop1", "reldir", "fifolink"] {
            try root.remove(path(name))
            #expect(!tree.exists(tree.rootPath + "/" + name))
        }
        #expect(tree.read(tree.rootPath + "/etc/hosts") == "confined hosts")
        #expect(tree.read(tree.rootPath + "/dir/file.txt") == "hello")
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        #expect(tree.exists(tree.rootPath + "/fifo"))
    }

    @Test(arguments: resolutions)
    func removesSpecialFilesWithoutOpeningThem(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        for name in ["fifo", "socket", "null"] {
            try root.remove(path(name))
            #expect(!tree.exists(tree.rootPath + "/" + name))
        }
    }

    @Test(arguments: resolutions)
    func removesFoldersRecursivelyWithoutFollowingLinksOut(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        // A folder whose links point at the outside folder, at the root and at a folder inside.
        try tree.link("abs-out", to: tree.outsidePath, in: tree.rootPath + "/dir/sub")
        try tree.link("rel-out", to: "../../../../outside", in: tree.rootPath + "/dir/sub")
        try tree.link("to-etc", to: "/etc", in: tree.rootPath + "/dir/sub")
        try tree.link("to-root", to: "/", in: tree.rootPath + "/dir")
        try root.remove(path("dir"))
        #expect(!tree.exists(tree.rootPath + "/dir"))
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        #expect(tree.read(tree.rootPath + "/etc/hosts") == "confined hosts")
        #expect(tree.exists(tree.rootPath + "/hosts"))
    }

    @Test(arguments: resolutions)
    func pathsThroughLinksStayInside(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.remove(path("outside-dir/secret.txt")) } == .notFound)
        #expect(failure { try root.remove(path("up-secret/..")) } == .forbidden)
        #expect(failure { try root.remove(path("../outside/secret.txt")) } == .notFound)
        #expect(failure { try root.remove(path("up/outside")) } == .notFound)
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
        // Through a link to "/", the root's own entry is removed, nothing else.
        try root.remove(path("slash/etc/hosts"))
        #expect(!tree.exists(tree.rootPath + "/etc/hosts"))
    }

    @Test(arguments: resolutions)
    func theRootAndMissingEntries(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.remove(.root) } == .forbidden)
        #expect(failure { try root.remove(path("/../..")) } == .forbidden)
        #expect(failure { try root.remove(path("missing")) } == .notFound)
        #expect(failure { try root.remove(path("dir/file.txt/x")) } == .notADirectory)
        #expect(tree.exists(tree.rootPath + "/dir/file.txt"))
    }
}
