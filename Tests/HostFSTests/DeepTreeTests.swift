import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import HostFS

/// A tree as deep as a container builds in its volume in two seconds, far deeper than
/// PATH_MAX or any descriptor budget: removing it, or walking down it, must neither
/// recurse once per level nor hold a descriptor per level.
@Suite struct DeepTreeTests {
    static let depth = 16_000

    @Test func removesAChainDeeperThanAnyDescriptorBudget() throws {
        let tree = try HostileTree()
        let chain = try DirectoryChain(in: tree.rootPath, named: "deep", depth: Self.depth) { bottom in
            #expect(mkfifoat(bottom, "fifo", 0o644) == 0)
            #expect(symlinkat("/", bottom, "slash") == 0)
        }
        let root = try tree.root(.automatic)
        let watch = DescriptorWatch(chain)
        let result = failure { try root.remove(path("deep")) }
        let most = watch.stop()
        #expect(result == .none)
        #expect(!tree.exists(tree.rootPath + "/deep"))
        // A few (top, current, next, and what a concurrent directory read may hold),
        // against one per level (16,000) before: the bound leaves room for the watch's timing.
        #expect(most <= 8, "\(most) descriptors open at once on the chain's directories")
        #expect(DescriptorWatch.openOn(Set(chain.identities)) == 0)
        #expect(tree.read(tree.rootPath + "/etc/hosts") == "confined hosts")
    }

    /// Climbing back, the removal reads each directory on from where it went down, by
    /// position: directories larger than one read of entries, with folders among the
    /// files, must still be removed whole.
    @Test func removesWideDirectoriesReadOnFromWhereItWentDown() throws {
        let tree = try HostileTree()
        let wide = tree.rootPath + "/wide"
        let files = FileManager.default
        try files.createDirectory(atPath: wide, withIntermediateDirectories: false)
        for index in 0..<1_500 {
            let name = String(format: "entry-with-a-longish-name-%04d", index)
            if index % 50 == 7 {
                try files.createDirectory(atPath: wide + "/" + name + "/inner", withIntermediateDirectories: true)
                try tree.write("leaf", to: wide + "/" + name + "/inner/leaf")
                try tree.link("out", to: tree.outsidePath, in: wide + "/" + name)
            } else {
                try tree.write(name, to: wide + "/" + name)
            }
        }
        let root = try tree.root(.automatic)
        try root.remove(path("wide"))
        #expect(!tree.exists(wide))
        #expect(tree.read(tree.outsidePath + "/secret.txt") == "secret")
    }

    /// The fallback resolution walks a path one component at a time: down a 16,000-level
    /// path it keeps the directory it is in, not all of those above. The walk ends on a
    /// FIFO that holds it at the bottom until the test opens the other end.
    @Test func theWalkHoldsAFewDescriptorsAtAnyDepth() throws {
        let tree = try HostileTree()
        let outsideLink = tree.base + "/fifo"
        let chain = try DirectoryChain(in: tree.rootPath, named: "deep", depth: Self.depth) { bottom in
            #expect(mkfifoat(bottom, "fifo", 0o644) == 0)
            #expect(linkat(bottom, "fifo", AT_FDCWD, outsideLink, 0) == 0)
        }
        let root = try tree.root(.componentWalk)
        let names = ["deep"] + Array(repeating: "d", count: Self.depth) + ["fifo"]
        let deepPath = ConfinedPath(components: names.map { try! FileName($0) })

        let watch = DescriptorWatch(chain)
        let opened = Shared<Result<Int32, SystemError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            opened.value = Result { () throws(SystemError) in try root.resolver.walk(deepPath, flags: O_RDONLY) }
            done.signal()
        }.start()
        // Long enough for the walk to reach the FIFO and wait there, whatever it holds;
        // then the writer's end lets it finish (unless it already failed).
        usleep(1_000_000)
        while done.wait(timeout: .now() + .milliseconds(10)) == .timedOut {
            let writer = open(outsideLink, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if writer >= 0 {
                close(writer)
                done.wait()
                break
            }
        }
        let most = watch.stop()

        let descriptor = try #require(try opened.value?.get())
        var reached = stat()
        fstat(descriptor, &reached)
        close(descriptor)
        var fifo = stat()
        stat(outsideLink, &fifo)
        #expect(reached.st_ino == fifo.st_ino)
        #expect(most <= 3, "\(most) descriptors open at once on the chain's directories")
        #expect(DescriptorWatch.openOn(Set(chain.identities)) == 0)
    }

    /// Links met on the way are read, and a target of many `..` climbs back up through
    /// the directories the walk came down, one `..` at a time.
    @Test func theWalkClimbsBackUpALongChain() throws {
        let tree = try HostileTree()
        let up = 1_300
        let chain = try DirectoryChain(in: tree.rootPath, named: "deep", depth: 2_000) { bottom in
            let target = String(repeating: "../", count: up) + "d"
            #expect(symlinkat(target, bottom, "up") == 0)
        }
        let names = ["deep"] + Array(repeating: "d", count: 2_000) + ["up"]
        let deepPath = ConfinedPath(components: names.map { try! FileName($0) })
        let root = try tree.root(.componentWalk)
        let descriptor = try root.resolver.walk(deepPath, flags: O_RDONLY | O_DIRECTORY)
        var reached = stat()
        fstat(descriptor, &reached)
        close(descriptor)
        let expected = chain.identities[chain.identities.count - up]
        #expect(FileIdentity(reached) == expected)
    }

    /// What climbing back without holding every directory above relies on: `..` of a
    /// directory moved since it was entered is not the directory it was entered from.
    @Test func climbingOutOfADirectoryMovedMeanwhileIsRefused() throws {
        let tree = try HostileTree()
        let dir = open(tree.rootPath + "/dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let sub = open(tree.rootPath + "/dir/sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer {
            close(dir)
            close(sub)
        }
        let cameFrom = try FileIdentity(of: dir)
        close(try openParent(of: sub, expecting: cameFrom, flags: O_RDONLY))
        #expect(rename(tree.rootPath + "/dir/sub", tree.rootPath + "/etc/sub") == 0)
        let refused = #expect(throws: SystemError.self) { close(try openParent(of: sub, expecting: cameFrom, flags: O_RDONLY)) }
        #expect(refused?.code == EAGAIN)
    }
}

/// `top/d/d/…/d` under `folder`, `depth` levels below `top`, made one level at a time
/// with mkdirat and openat (its path is far too long for mkdir -p). Removed with rm -rf
/// when a test left it behind.
final class DirectoryChain: Sendable {
    /// Every directory of the chain, `top` first.
    let identities: [FileIdentity]
    let topPath: String

    /// Builds the chain, then runs `atBottom` with the deepest directory's descriptor.
    init(in folder: String, named top: String, depth: Int, atBottom: (Int32) throws -> Void = { _ in }) throws {
        topPath = folder + "/" + top
        var identities: [FileIdentity] = []
        var current = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        defer { close(current) }
        var name = top
        for _ in 0...depth {
            guard mkdirat(current, name, 0o755) == 0 else { throw POSIXError(.init(rawValue: errno)!) }
            let child = openat(current, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
            close(current)
            current = child
            identities.append(try FileIdentity(of: current))
            name = "d"
        }
        self.identities = identities
        try atBottom(current)
    }

    deinit {
        var status = stat()
        if lstat(topPath, &status) == 0 {
            let rm = try? Process.run(URL(fileURLWithPath: "/bin/rm"), arguments: ["-rf", topPath])
            rm?.waitUntilExit()
        }
    }
}

/// Watches, from its own thread, how many of the process's descriptors are open on the
/// directories of a chain at once (by device and inode, so other tests running
/// meanwhile do not count), until `stop()`.
final class DescriptorWatch: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let most = Atomic<Int>(0)
    private let finished = DispatchSemaphore(value: 0)

    init(_ chain: DirectoryChain) {
        let identities = Set(chain.identities)
        Thread { [self] in
            while true {
                let last = stopped.load(ordering: .acquiring)
                let count = Self.openOn(identities)
                if count > most.load(ordering: .relaxed) { most.store(count, ordering: .relaxed) }
                if last { break }
                usleep(1_000) // leave the processor to what is watched
            }
            finished.signal()
        }.start()
    }

    /// Stops watching and returns the most descriptors seen open at once.
    func stop() -> Int {
        stopped.store(true, ordering: .releasing)
        finished.wait()
        return most.load(ordering: .relaxed)
    }

    /// How many descriptors of this process are open on one of `identities` now.
    static func openOn(_ wanted: Set<FileIdentity>) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return -1 }
        return names.count { name in
            var status = stat()
            return stat("/proc/self/fd/" + name, &status) == 0 && wanted.contains(FileIdentity(status))
        }
    }
}

/// A value handed from one thread to another.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
