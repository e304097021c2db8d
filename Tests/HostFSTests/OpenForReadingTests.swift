import Glibc
import Testing
@testable import HostFS

@Suite struct OpenForReadingTests {
    @Test(arguments: resolutions)
    func opensARegularFile(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let file = try tree.root(resolution).openForReading(path("/dir/file.txt"))
        #expect(file.size == 5)
        #expect(file.name == "file.txt")
        #expect(fcntl(file.descriptor, F_GETFL) & O_NONBLOCK == 0)
        #expect(contents(file) == "hello")
    }

    @Test(arguments: resolutions)
    func anAbsoluteLinkMeansTheRootsSlash(resolution: PathResolution) throws {
        // The regression the original agent has: it served its own /etc/hosts here.
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        let file = try root.openForReading(path("hosts"))
        #expect(file.name == "hosts")
        #expect(contents(file) == "confined hosts")
        #expect(contents(try root.openForReading(path("slash/etc/hosts"))) == "confined hosts")
        #expect(contents(try root.openForReading(path("up/up/etc/hosts"))) == "confined hosts")
        // From deep inside, an absolute link still starts at the root, not where it sits.
        try tree.link("deep-hosts", to: "/etc/hosts", in: tree.rootPath + "/dir/sub")
        try tree.link("deep-up", to: "../../../../../etc/hosts", in: tree.rootPath + "/dir/sub")
        #expect(contents(try root.openForReading(path("dir/sub/deep-hosts"))) == "confined hosts")
        #expect(contents(try root.openForReading(path("reldir/sub/deep-up"))) == "confined hosts")
    }

    @Test(arguments: resolutions)
    func nothingOutsideTheRootIsRead(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        #expect(failure { try root.openForReading(path("up-secret")) } == .notFound)
        #expect(failure { try root.openForReading(path("outside-dir/secret.txt")) } == .notFound)
        #expect(failure { try root.openForReading(path("../outside/secret.txt")) } == .notFound)
        #expect(failure { try root.openForReading(path("up/outside/secret.txt")) } == .notFound)
        #expect(failure { try root.openForReading(path("environ")) } == .notFound)
        #expect(failure { try root.openForReading(path("loop1")) } == .unfollowableLink)
        #expect(failure { try root.openForReading(path("self")) } == .unfollowableLink)
    }

    @Test(.timeLimit(.minutes(1)), arguments: resolutions)
    func specialFilesAreRefusedAtOnce(resolution: PathResolution) throws {
        let tree = try HostileTree()
        let root = try tree.root(resolution)
        // No writer ever opens the FIFO: opening it for reading would block forever.
        // Wall time on a monotonic clock: a blocked open sleeps, so CPU time (clock())
        // would not see it.
        let started = ContinuousClock.now
        #expect(failure { try root.openForReading(path("fifo")) } == .specialFile)
        #expect(failure { try root.openForReading(path("fifolink")) } == .specialFile)
        #expect(failure { try root.openForReading(path("socket")) } == .specialFile)
        #expect(failure { try root.openForReading(path("null")) } == .specialFile)
        #expect(failure { try root.openForReading(path("dir")) } == .isADirectory)
        #expect(failure { try root.openForReading(.root) } == .isADirectory)
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func theErrorNamesTheKindAndTheClientPath() throws {
        let tree = try HostileTree()
        let root = try tree.root(.automatic)
        do throws(HostFSError) {
            _ = try root.openForReading(path("/fifo"))
            Issue.record("opening a FIFO succeeded")
        } catch {
            #expect(error == .specialFile(path: "/fifo", kind: .fifo))
            #expect(error.description == "/fifo: is a FIFO, only regular files can be read")
            #expect(!error.description.contains(tree.base))
        }
    }
}
