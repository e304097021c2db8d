import Foundation
import Testing
@testable import HostFS

@Suite struct VolumeRootTests {
    /// base/root plays the volumes folder: a good volume, one whose _data is a link out,
    /// and a link named like a volume pointing at the outside folder.
    func volumes(_ tree: HostileTree) throws -> VolumeRoot {
        let files = FileManager.default
        try files.createDirectory(atPath: tree.rootPath + "/my_vol-1.0/_data/sub", withIntermediateDirectories: true)
        try tree.write("in the volume", to: tree.rootPath + "/my_vol-1.0/_data/sub/f.txt")
        try files.createDirectory(atPath: tree.rootPath + "/evil", withIntermediateDirectories: true)
        try tree.link("_data", to: tree.outsidePath, in: tree.rootPath + "/evil")
        try tree.link("linked", to: tree.outsidePath)
        return VolumeRoot(path: tree.rootPath)
    }

    @Test func opensTheDataFolderOfAVolume() throws {
        let tree = try HostileTree()
        let root = try volumes(tree).open(volume: "my_vol-1.0")
        #expect(try root.list(.root).map(\.name) == ["sub"])
        #expect(contents(try root.openForReading(path("/sub/f.txt"))) == "in the volume")
        // The volume is its own root: ".." cannot reach the other volumes.
        #expect(try root.list(path("../..")).map(\.name) == ["sub"])
    }

    @Test(arguments: ["", "a", "-x", ".x", "_x", "../etc", "a/b", "my vol", "x\0y", "ü1"])
    func namesDockerRefusesAreInvalid(name: String) throws {
        let tree = try HostileTree()
        #expect(!VolumeRoot.isValidName(name))
        #expect(failure { try volumes(tree).open(volume: name) } == .invalidArgument)
    }

    @Test(arguments: ["ab", "0x", "my_vol-1.0", "A.b_c-d"])
    func namesDockerAcceptsAreValid(name: String) {
        #expect(VolumeRoot.isValidName(name))
    }

    @Test("a mount point the engine names is the volume's root: as the agent sees it, or beneath a host root, links confined there")
    func opensTheEnginesMountpoint() throws {
        let tree = try HostileTree()
        _ = try volumes(tree)
        let mountpoint = tree.rootPath + "/my_vol-1.0/_data"
        let direct = try VolumeRoot.open(volume: "my_vol-1.0", mountpoint: mountpoint, hostRoot: nil)
        #expect(try direct.list(.root).map(\.name) == ["sub"])
        #expect(try direct.list(path("../..")).map(\.name) == ["sub"])
        // With host management the engine's path is the host's: beneath the host root.
        let hosted = try VolumeRoot.open(volume: "my_vol-1.0", mountpoint: "/root/my_vol-1.0/_data", hostRoot: tree.base)
        #expect(contents(try hosted.openForReading(path("/sub/f.txt"))) == "in the volume")
        // A _data that links out resolves inside the host root, where nothing is.
        #expect(failure { try VolumeRoot.open(volume: "evil", mountpoint: "/evil/_data", hostRoot: tree.rootPath) } == .notFound)
        #expect(failure { try VolumeRoot.open(volume: "gone", mountpoint: tree.rootPath + "/gone/_data", hostRoot: nil) } == .notFound)
        #expect(failure { try VolumeRoot.open(volume: "rel", mountpoint: "relative/_data", hostRoot: nil) } == .notFound)
    }

    /// A mount point an engine may name that is not a local volume's folder: another
    /// volume's, one with `..` to it, the volumes folder itself, `/`. Before, each
    /// opened what it named (the whole file system for `/`).
    @Test("a mount point not of the shape …/<name>/_data is not opened, whatever it names",
          arguments: ["/", "/etc", "{root}", "{root}/other/_data", "{root}/my_vol-1.0", "{root}/my_vol-1.0/_data/..", "{root}/my_vol-1.0/_data/sub"])
    func mountpointsOfAnotherShape(_ mountpoint: String) throws {
        let tree = try HostileTree()
        _ = try volumes(tree)
        try FileManager.default.createDirectory(atPath: tree.rootPath + "/other/_data", withIntermediateDirectories: true)
        let named = mountpoint.replacingOccurrences(of: "{root}", with: tree.rootPath)
        #expect(failure { try VolumeRoot.open(volume: "my_vol-1.0", mountpoint: named, hostRoot: nil) } == .notFound, "\(named)")
    }

    @Test func missingVolumesAreNotFound() throws {
        let tree = try HostileTree()
        let volumes = try volumes(tree)
        #expect(failure { try volumes.open(volume: "missing") } == .notFound)
        #expect(failure { try VolumeRoot(path: tree.base + "/nowhere").open(volume: "ab") } == .notFound)
        // Links planted where a volume would be resolve inside the volumes folder only.
        #expect(failure { try volumes.open(volume: "evil") } == .notFound)
        #expect(failure { try volumes.open(volume: "linked") } == .notFound)
    }

    @Test func theDefaultIsDockersFolder() {
        #expect(VolumeRoot().path == "/var/lib/docker/volumes")
    }
}
