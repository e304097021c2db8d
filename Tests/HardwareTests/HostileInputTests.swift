import Foundation
import Hardware
import Testing
import TestCommands

/// What a device, a filesystem's server or an odd host tree can report, run through the
/// real `deckhand host-info`: numbers that overflow, a mount that never answers. Each
/// trapped (or hung) the inventory, and so a cold `/host/info` of the agent, before.
@Suite(.serialized) struct HostileInputTests {
    /// A host root made for one test: the pinned pci.ids, and what `files` hold.
    static func hostRoot(_ files: [String: String]) throws -> URL {
        let root = try TestSupport.temporaryDirectory()
        for (path, text) in files {
            let file = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: file)
        }
        if !FileManager.default.fileExists(atPath: root.appendingPathComponent("usr").path) {
            try FileManager.default.createSymbolicLink(
                at: root.appendingPathComponent("usr"), withDestinationURL: TestSupport.fixtureHostRoot.appendingPathComponent("usr"))
        }
        return root
    }

    /// A USB stick whose READ CAPACITY says 2⁵⁵ sectors (2⁶⁴ bytes): the kernel copies
    /// it into sysfs `size` unchecked. Its size is unknown (0), the rest of it listed.
    @Test func diskSizePastTwoToTheSixtyFourBytes() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let stick = try String(contentsOf: TestSupport.fixtures.appendingPathComponent("usb-stick.umockdev"), encoding: .utf8)
        #expect(stick.contains("A: size=60063744\\n"))
        let tree = directory.appendingPathComponent("huge-stick.umockdev")
        try stick.replacingOccurrences(of: "A: size=60063744\\n", with: "A: size=36028797018963968\\n").write(to: tree, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(["umockdev-run", "-d", tree.path, "--", try TestSupport.deckhand, "host-info", "--host-root", TestSupport.fixtureHostRoot.path])
        #expect(result.status == 0, "\(result.stderr)")
        let host = try JSONDecoder().decode(HostInfo.self, from: Data(result.stdout.utf8))
        let disk = try #require(host.physicalDisks.first { $0.name == "sdb" })
        #expect(disk.size == 0)
        #expect(disk.partitions.map(\.name) == ["sdb1"])
    }

    /// `MemTotal` past 2⁶⁴ bytes and an online CPU list of 10¹¹ CPUs (a host root that is
    /// not a Linux host's): before, a trap and an array of that length (an abort).
    @Test func memoryAndCPUListsPastAnyMachine() throws {
        let root = try Self.hostRoot([
            "proc/meminfo": "MemTotal:       18014398509481984 kB\n",
            "proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU\n",
            "sys/devices/system/cpu/online": "0-100000000000\n",
            "sys/devices/system/cpu/cpu0/topology/core_id": "0\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let result = try TestSupport.run([try TestSupport.deckhand, "host-info", "--host-root", root.path])
        #expect(result.status == 0, "\(result.stderr)")
        let processors = try #require(try JSONDecoder().decode(HostInfo.self, from: Data(result.stdout.utf8)).processors)
        #expect(processors.memory == nil)
        #expect(processors.model == "Test CPU")
    }

    /// A host pci.ids that libpci cannot parse (lspci refuses it too): before, the agent
    /// with host management refused to start, and `deckhand host-info` failed.
    @Test func corruptPCIIDsFallsBackAndSaysSo() throws {
        let root = try Self.hostRoot(["usr/share/misc/pci.ids": "bogus line\n\tanother\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        let lspci = try TestSupport.run(["lspci", "-i", root.appendingPathComponent("usr/share/misc/pci.ids").path])
        #expect(lspci.status != 0 && lspci.stderr.contains("Parse error"), "\(lspci.status): \(lspci.stderr)")
        let result = try TestSupport.run([try TestSupport.deckhand, "host-info", "--host-root", root.path])
        #expect(result.status == 0, "\(result.stderr)")
        let host = try JSONDecoder().decode(HostInfo.self, from: Data(result.stdout.utf8))
        #expect(host.warnings?.contains { $0.contains("pci.ids") && $0.contains("cannot be read") } == true, "\(host.warnings ?? [])")
    }

    /// Device strings are the devices' (a USB descriptor, a label, here the CPU model):
    /// the table prints no control byte raw, and the JSON is the same JSON as Python
    /// reads it, with no raw C1 byte (which terminals take for ESC) either.
    @Test func terminalEscapesInDeviceStringsPrintInertly() throws {
        let model = "Evil\u{1B}]0;pwned\u{07}\u{9B}2J CPU"
        let root = try Self.hostRoot(["proc/cpuinfo": "processor\t: 0\nmodel name\t: \(model)\n", "proc/meminfo": "MemTotal: 1024 kB\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        let table = try TestSupport.run([try TestSupport.deckhand, "host-info", "--table", "--host-root", root.path])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("Evil"))
        #expect(!table.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B }, "\(table.stdout)")
        let json = try TestSupport.run([try TestSupport.deckhand, "host-info", "--host-root", root.path])
        #expect(!json.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B })
        let python = try Command.run("python3", ["-c", "import json, sys; print(json.load(sys.stdin)['CPU']['Model'].encode('unicode_escape').decode())"], input: Data(json.stdout.utf8))
        #expect(python.output.trimmingCharacters(in: .newlines) == "Evil\\x1b]0;pwned\\x07\\x9b2J CPU", "\(python.output) \(python.errorOutput)")
    }

    /// mountinfo writes a newline in a mount's source as `\\012`, decoded back to a
    /// newline (as USB descriptors, SCSI vendors and filesystem labels carry them raw).
    /// Before, the table printed it as it was: a row of the device's own making.
    @Test("a line break in a device's string stays in its cell: the table gains no row")
    func lineBreaksInDeviceStringsStayInTheirCell() throws {
        let root = try Self.hostRoot([
            "proc/1/mountinfo": "21 1 8:1 / / rw,relatime - ext4 /dev/evil\\012sdz\\011usb\\0402T\\040FAKE rw\n",
            "proc/meminfo": "MemTotal: 1024 kB\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let table = try TestSupport.run([try TestSupport.deckhand, "host-info", "--table", "--host-root", root.path])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("/dev/evil\\nsdz\\tusb 2T FAKE"), "\(table.stdout)")
        #expect(!table.stdout.split(separator: "\n").contains { $0.hasPrefix("sdz") }, "\(table.stdout)")
        let json = try TestSupport.run([try TestSupport.deckhand, "host-info", "--host-root", root.path])
        let python = try Command.run(
            "python3", ["-c", "import json, sys; print([f['Source'] for f in json.load(sys.stdin)['Filesystems']])"], input: Data(json.stdout.utf8))
        #expect(python.output.contains(#"/dev/evil\nsdz\tusb 2T FAKE"#), "\(python.output) \(python.errorOutput)")
    }

    @Test("inventories collected at once share each mount's call: none is named unanswered for being asked twice")
    func concurrentInventoriesShareCalls() async throws {
        let inventory = try HardwareInventory(hostRoot: .system)
        let collected = await withTaskGroup(of: HostInfo.self) { group in
            for _ in 0..<8 { group.addTask { inventory.collect() } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for host in collected {
            #expect(!(host.warnings ?? []).contains { $0.contains("statvfs") }, "\(host.warnings ?? [])")
            #expect(host.filesystems.map(\.mountPoint) == collected[0].filesystems.map(\.mountPoint))
        }
    }

    // MARK: Filesystems whose server misbehaves

    /// A FUSE filesystem served by Python over /dev/fuse, in a mount namespace of its
    /// own (so no other test, and no `df` on this machine, ever sees it): its STATFS
    /// answer is `blocks`, `free`, `available` blocks of `unit` bytes, or never comes
    /// (`hang`). It holds one file, `sda` (1 GiB), whose reads never get an answer: a
    /// disk in error recovery, or whose NBD or iSCSI server is gone. Inside that
    /// namespace, once mounted, Python's `os.statvfs` of it and `inventory` (by default
    /// `deckhand host-info --host-root /`) run, their outputs in `statvfs` and
    /// `inventory.json`. Killing the server aborts the connection (ending any call
    /// waiting on it) and, with the namespace, the mount.
    final class MisbehavingFilesystem {
        let folder: URL
        let mountPoint: URL
        private let server: ChildProcess

        /// `mountPoint` is `mount` in a new temporary folder, or `mountPath` (relative)
        /// there; `inventory` may name the folder as `{folder}`.
        init(
            statfs: (blocks: UInt64, free: UInt64, available: UInt64, unit: UInt64)?,
            mountPath: String = "mount", inventory: [String]? = nil
        ) throws {
            folder = try TestSupport.temporaryDirectory()
            mountPoint = folder.appendingPathComponent(mountPath)
            try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
            let answer = statfs.map { "\($0.blocks) \($0.free) \($0.available) \($0.unit)" } ?? "hang"
            let folderPath = folder.path
            let command = try (inventory ?? [TestSupport.deckhand, "host-info", "--host-root", "/"])
                .map { $0.replacingOccurrences(of: "{folder}", with: folderPath) }
            let commandJSON = String(decoding: try JSONEncoder().encode(command), as: UTF8.self)
            server = try Command.spawn("python3", ["-c", """
                import ctypes, json, os, struct, subprocess, sys, time
                mount_point, answer, folder, inventory = sys.argv[1:5]
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
                    sys.exit("unshare failed: errno %d" % ctypes.get_errno())
                if libc.mount(None, b"/", None, ctypes.c_ulong(16384 | (1 << 18)), None) != 0:  # MS_REC | MS_PRIVATE
                    sys.exit("private mounts failed: errno %d" % ctypes.get_errno())
                fd = os.open("/dev/fuse", os.O_RDWR)
                options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
                if libc.mount(b"deckhand-test", mount_point.encode(), b"fuse.deckhandtest", ctypes.c_ulong(0), options) != 0:
                    sys.exit("mount failed: errno %d" % ctypes.get_errno())
                probe = "import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_blocks, s.f_bfree, s.f_bavail, s.f_frsize)"
                subprocess.Popen([sys.executable, "-c", probe, mount_point], stdout=open(folder + "/statvfs", "w"), pass_fds=())
                subprocess.Popen(json.loads(inventory), stdout=open(folder + "/inventory.json", "w"))
                def reply(unique, payload=b"", error=0):
                    os.write(fd, struct.pack("<IiQ", 16 + len(payload), error, unique) + payload)
                def attributes(node):  # the root folder (node 1), or the file sda (node 2)
                    if node == 1:
                        return struct.pack("<QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
                    return struct.pack("<QQQQQQIIIIIIIIII", 2, 1 << 30, 1 << 21, 0, 0, 0, 0, 0, 0, 0o100644, 1, 0, 0, 0, 4096, 0)
                while True:
                    try:
                        request = os.read(fd, 1 << 20)
                    except OSError:
                        break
                    length, opcode, unique, node = struct.unpack_from("<IIQQ", request)
                    if opcode == 26:    # INIT: protocol 7.31
                        reply(unique, struct.pack("<IIIIHHIIHHI7I", 7, 31, 0, 0, 0, 0, 4096, 1, 0, 0, 0, *([0] * 7)))
                    elif opcode == 1 and node == 1 and request[40:length].rstrip(b"\\0") == b"sda":  # LOOKUP
                        reply(unique, struct.pack("<QQQQII", 2, 0, 60, 60, 0, 0) + attributes(2))
                    elif opcode == 1:
                        reply(unique, error=-2)
                    elif opcode == 3:   # GETATTR
                        reply(unique, struct.pack("<QII", 60, 0, 0) + attributes(node))
                    elif opcode == 14:  # OPEN
                        reply(unique, struct.pack("<QII", 1, 0, 0))
                    elif opcode == 15:  # READ: never answered
                        time.sleep(3600)
                    elif opcode == 17:  # STATFS
                        if answer == "hang":
                            time.sleep(3600)
                        blocks, free, available, unit = map(int, answer.split())
                        reply(unique, struct.pack("<QQQQQIII7I", blocks, free, available, 0, 0, 4096, 255, unit, *([0] * 7)))
                    elif opcode == 38:  # DESTROY
                        reply(unique)
                        break
                    else:
                        reply(unique, error=-38)
                """, mountPoint.path, answer, folder.path, commandJSON], errorLog: folder.appendingPathComponent("server.log").path)
        }

        /// What `file` (of the two outputs) holds once `done` accepts it, within `seconds`.
        func output(_ file: String, within seconds: Double, until done: (Data) -> Bool) -> Data? {
            let deadline = Date().addingTimeInterval(seconds)
            repeat {
                if let data = try? Data(contentsOf: folder.appendingPathComponent(file)), done(data) { return data }
                usleep(50_000)
            } while Date() < deadline
            return nil
        }

        /// The inventory `deckhand host-info` printed inside the namespace, once whole.
        func inventory(within seconds: Double) -> HostInfo? {
            output("inventory.json", within: seconds) { (try? JSONDecoder().decode(HostInfo.self, from: $0)) != nil }
                .flatMap { try? JSONDecoder().decode(HostInfo.self, from: $0) }
        }

        var serverLog: String { (try? String(contentsOf: folder.appendingPathComponent("server.log"), encoding: .utf8)) ?? "" }

        func stop() {
            server.stop(grace: 1)
            try? FileManager.default.removeItem(at: folder)
        }

        deinit { stop() }
    }

    @Test("a filesystem whose server says more blocks are free than it has, or past 2⁶⁴ bytes: listed, never a trap",
          arguments: [(UInt64(100), UInt64(200), UInt64(50), UInt64(4096)), (UInt64(1) << 60, 1, 1, 4096)])
    func statfsNumbersThatDoNotAddUp(blocks: UInt64, free: UInt64, available: UInt64, unit: UInt64) throws {
        let filesystem = try MisbehavingFilesystem(statfs: (blocks, free, available, unit))
        defer { filesystem.stop() }
        // What Python's os.statvfs, the same call, reads of it.
        let python = filesystem.output("statvfs", within: 30) { $0.last == UInt8(ascii: "\n") }.map { String(decoding: $0, as: UTF8.self) }
        #expect(python?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(blocks) \(free) \(available) \(unit)", "\(filesystem.serverLog)")
        let host = try #require(filesystem.inventory(within: 60), "no inventory: \(filesystem.serverLog)")
        let listed = try #require(host.filesystems.first { $0.mountPoint == filesystem.mountPoint.path })
        // Bytes as far as they go: past 2⁶⁴ is UInt64.max; more free than there is, none used.
        func bytes(_ count: UInt64) -> UInt64 {
            let (product, overflow) = count.multipliedReportingOverflow(by: unit)
            return overflow ? .max : product
        }
        #expect(listed.size == bytes(blocks))
        #expect(listed.used == bytes(blocks >= free ? blocks - free : 0))
        #expect(listed.available == bytes(available))
    }

    @Test("a filesystem whose server never answers is left out, named in Warnings, within seconds; the rest is listed")
    func statfsThatNeverAnswers() throws {
        let filesystem = try MisbehavingFilesystem(statfs: nil)
        defer { filesystem.stop() }
        // The inventory's thread still waiting on the server keeps its process from
        // ending (a thread in a FUSE or NFS call cannot be killed), so what it printed,
        // and when, is read from the file it printed to, not from the process's end.
        // Before, the inventory waited for the server: an hour here, for ever for a dead NFS server.
        let printed = filesystem.inventory(within: 20)
        filesystem.stop()
        let host = try #require(printed, "no inventory within 20 s of a mount that does not answer")
        #expect(!host.filesystems.contains { $0.mountPoint == filesystem.mountPoint.path })
        #expect(host.filesystems.contains { $0.mountPoint == "/" })
        #expect(host.warnings?.contains { $0.contains(filesystem.mountPoint.path) && $0.contains("statvfs") } == true, "\(host.warnings ?? [])")
    }

    @Test("a disk whose reads never answer is listed with what udev recorded, named in Warnings, within seconds")
    func diskProbeThatNeverAnswers() throws {
        // The sata-hdd tree's disk is /dev/sda; through the host root, its node is the
        // FUSE file whose reads hang (umockdev serves /dev and /sys, not the host root).
        let filesystem = try MisbehavingFilesystem(
            statfs: (1, 1, 1, 4096), mountPath: "root/dev",
            inventory: TestSupport.umockdevRun("sata-hdd") + [TestSupport.deckhand, "host-info", "--host-root", "{folder}/root"])
        defer { filesystem.stop() }
        // Before, the inventory waited on the read: an hour here, for ever for a dead disk.
        let printed = filesystem.inventory(within: 20)
        filesystem.stop()
        let host = try #require(printed, "no inventory within 20 s of a disk that does not answer: \(filesystem.serverLog)")
        let disk = try #require(host.physicalDisks.first { $0.name == "sda" })
        // What udev recorded of it, as lsblk reads the same tree.
        let lsblk = try LsblkView.underFixture("sata-hdd")
        #expect(disk.partitions.map(\.name) == lsblk.disks.first { $0.name == "sda" }?.children?.map(\.name))
        #expect(disk.partitionTable == lsblk.disks.first { $0.name == "sda" }?.pttype)
        #expect(host.warnings?.contains { $0.contains("/dev/sda") && $0.contains("probe") } == true, "\(host.warnings ?? [])")
    }
}
