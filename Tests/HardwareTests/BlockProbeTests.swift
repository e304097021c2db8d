import Foundation
import Hardware
import Testing

/// libblkid probing of small disk images made with sfdisk and mkfs, against what
/// `blkid -p` (and `partx`, for the partition entries) prints for the same image.
@Suite struct BlockProbeTests {
    /// A partition to create: sfdisk type, size in MiB, and how to format it.
    struct Layout {
        var type: String
        var mebibytes: Int
        var format: [String]?  // mkfs command line without the target, nil to leave empty
    }

    /// Builds `disk.img` with the given table and partitions, each formatted in its own
    /// file and copied in at the offset sfdisk chose.
    static func makeImage(in directory: URL, label: String, labelID: String, partitions: [Layout]) throws -> URL {
        let image = directory.appendingPathComponent("disk.img")
        let total = partitions.reduce(2) { $0 + $1.mebibytes } + 1
        _ = try TestSupport.output(["truncate", "-s", "\(total)M", image.path])
        var script = "label: \(label)\nlabel-id: \(labelID)\n"
        for partition in partitions { script += ",\(partition.mebibytes)M,\(partition.type)\n" }
        let scriptFile = directory.appendingPathComponent("layout.sfdisk")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        _ = try TestSupport.output(["sh", "-c", "sfdisk --quiet \"$0\" < \"$1\"", image.path, scriptFile.path])
        let starts = try partitionStarts(image)
        for (index, partition) in partitions.enumerated() {
            guard let format = partition.format else { continue }
            let part = directory.appendingPathComponent("part\(index + 1).img")
            _ = try TestSupport.output(["truncate", "-s", "\(partition.mebibytes)M", part.path])
            _ = try TestSupport.output(format + [part.path])
            _ = try TestSupport.output([
                "dd", "if=\(part.path)", "of=\(image.path)", "bs=512", "seek=\(starts[index])", "conv=notrunc", "status=none",
            ])
        }
        return image
    }

    /// Start sectors of the image's partitions, from sfdisk's JSON dump.
    static func partitionStarts(_ image: URL) throws -> [Int] {
        struct Dump: Decodable {
            struct Table: Decodable {
                struct Partition: Decodable { var start: Int }
                var partitions: [Partition]
            }
            var partitiontable: Table
        }
        let json = try TestSupport.output(["sfdisk", "--json", image.path])
        return try JSONDecoder().decode(Dump.self, from: Data(json.utf8)).partitiontable.partitions.map(\.start)
    }

    /// `blkid -p -o export` as a dictionary, optionally for a byte range of the image.
    static func blkid(_ image: URL, offset: UInt64? = nil, size: UInt64? = nil) throws -> [String: String] {
        var arguments = ["blkid", "-p", "-o", "export"]
        if let offset, let size { arguments += ["-O", "\(offset)", "-S", "\(size)"] }
        let result = try TestSupport.run(arguments + [image.path])
        // Status 2: nothing found, which is an answer too.
        guard result.status == 0 || result.status == 2 else {
            throw TestSupport.CommandFailed(arguments: arguments, status: result.status, stderr: result.stderr)
        }
        return pairs(result.stdout)
    }

    /// `partx` (util-linux, on libblkid) partition entries: number → (UUID, NAME).
    static func partx(_ image: URL) throws -> [Int: [String: String]] {
        let output = try TestSupport.output(["partx", "-g", "-P", "-o", "NR,START,SECTORS,UUID,NAME", image.path])
        var entries: [Int: [String: String]] = [:]
        for line in output.split(separator: "\n") {
            var fields: [String: String] = [:]
            // NR="1" START="2048" ... : split on `" ` boundaries.
            for match in line.split(separator: "\" ") {
                let parts = match.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                fields[String(parts[0])] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            if let number = fields["NR"].flatMap(Int.init) { entries[number] = fields }
        }
        return entries
    }

    static func pairs(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }

    /// Every field of the probe against blkid/partx for the same image.
    static func expectMatchesBlkid(_ image: URL, expectedPartitions: Int) throws {
        let probe = try BlockProbe.probe(path: image.path)
        let disk = try blkid(image)
        #expect(probe.partitionTable == disk["PTTYPE"])
        #expect(probe.partitionTableUUID == disk["PTUUID"])
        #expect(probe.partitions.count == expectedPartitions)
        let entries = try partx(image)
        #expect(probe.partitions.map(\.number) == entries.keys.sorted())
        for partition in probe.partitions {
            let entry = try #require(entries[partition.number])
            #expect(partition.offset == UInt64(entry["START"] ?? "")! * 512)
            #expect(partition.size == UInt64(entry["SECTORS"] ?? "")! * 512)
            #expect(partition.partitionUUID == entry["UUID"].flatMap { $0.isEmpty ? nil : $0 })
            #expect(partition.partitionLabel == entry["NAME"].flatMap { $0.isEmpty ? nil : $0 })
            let contents = try blkid(image, offset: partition.offset, size: partition.size)
            #expect(partition.filesystem?.type == contents["TYPE"])
            #expect(partition.filesystem?.uuid == contents["UUID"])
            #expect(partition.filesystem?.label == contents["LABEL"])
        }
    }

    @Test func gptWithExt4VfatAndSwap() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = try Self.makeImage(
            in: directory, label: "gpt", labelID: "0B6F7E2A-9C41-4D3E-B5A8-7F6E5D4C3B2A",
            partitions: [
                Layout(type: "U", mebibytes: 33, format: ["mkfs.vfat", "-F", "32", "-n", "EFI", "-i", "5A1E0C3F"]),
                Layout(type: "L", mebibytes: 8, format: ["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-U", "3e6be9de-8139-4f1b-9c5a-2b7f1c0d4e21"]),
                Layout(type: "S", mebibytes: 4, format: ["mkswap", "-L", "swap0", "-U", "11111111-2222-4333-8444-555555555555"]),
                Layout(type: "L", mebibytes: 1, format: nil),
            ])
        try Self.expectMatchesBlkid(image, expectedPartitions: 4)
        let probe = try BlockProbe.probe(path: image.path)
        #expect(probe.partitionTable == "gpt")
        #expect(probe.partitions.map { $0.filesystem?.type } == ["vfat", "ext4", "swap", nil])
    }

    @Test func dosWithExt4AndVfat() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = try Self.makeImage(
            in: directory, label: "dos", labelID: "0x1a2b3c4d",
            partitions: [
                Layout(type: "83", mebibytes: 8, format: ["mkfs.ext4", "-q", "-F", "-L", "data"]),
                Layout(type: "c", mebibytes: 4, format: ["mkfs.vfat", "-n", "STICK", "-i", "C0DECAFE"]),
            ])
        try Self.expectMatchesBlkid(image, expectedPartitions: 2)
        let probe = try BlockProbe.probe(path: image.path)
        #expect(probe.partitionTable == "dos")
        #expect(probe.partitions.map(\.partitionUUID) == ["1a2b3c4d-01", "1a2b3c4d-02"])
    }

    @Test func wholeDiskFilesystemWithoutTable() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = directory.appendingPathComponent("floppy.img")
        _ = try TestSupport.output(["mkfs.vfat", "-C", "-n", "WHOLE", "-i", "1234ABCD", image.path, "8192"])
        let probe = try BlockProbe.probe(path: image.path)
        let expected = try Self.blkid(image)
        #expect(probe.partitionTable == nil)
        #expect(probe.partitions.isEmpty)
        #expect(probe.filesystem == Filesystem(type: expected["TYPE"] ?? "?", uuid: expected["UUID"], label: expected["LABEL"]))
    }

    /// A 1 MiB image whose first sector is a Sun disk label: heads, sectors per track,
    /// and the first partition's start cylinder and size (in sectors), as a crafted USB
    /// stick would carry them. libblkid computes the start as a C int product.
    static func sunLabel(in directory: URL, heads: Int, sectors: Int, startCylinder: UInt32) throws -> URL {
        let image = directory.appendingPathComponent("sun-\(heads)-\(sectors)-\(startCylinder).img")
        let script = """
            import struct, sys
            heads, sectors, cylinder, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
            label = bytearray(512)
            label[0:10] = b"test-label"
            # struct sun_disklabel: geometry at 420, the first partition's (start cylinder, sectors) at 444.
            struct.pack_into(">12H", label, 420, 0, 0, 0, 0, 0, 0, 0, 0, heads, sectors, 0, 0)
            struct.pack_into(">II", label, 444, cylinder, 100)
            struct.pack_into(">H", label, 508, 0xDABE)
            checksum = 0
            for offset in range(0, 510, 2):
                checksum ^= struct.unpack_from(">H", label, offset)[0]
            struct.pack_into(">H", label, 510, checksum)
            open(out, "wb").write(bytes(label) + bytes(1024 * 1024 - 512))
            """
        _ = try TestSupport.output(["python3", "-c", script, "\(heads)", "\(sectors)", "\(startCylinder)", image.path])
        return image
    }

    @Test func sunLabelReadAsPartxReadsIt() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = try Self.sunLabel(in: directory, heads: 16, sectors: 63, startCylinder: 1)
        let probe = try BlockProbe.probe(path: image.path)
        #expect(probe.partitionTable == (try Self.blkid(image))["PTTYPE"])
        // partx: NR START SECTORS, one line per entry.
        let partx = try TestSupport.output(["partx", "-g", "-o", "NR,START,SECTORS", image.path])
            .split(separator: "\n").map { $0.split(separator: " ").compactMap { UInt64($0) } }
        #expect(probe.partitions.map { [UInt64($0.number), $0.offset / 512, $0.size / 512] } == partx)
    }

    /// libblkid 2.38 multiplies the start cylinder by heads × sectors in C ints: 65535
    /// heads and sectors give a negative start, 65535 × 32768 one past 2⁶³ bytes. Before,
    /// either trapped the agent (`UInt64(negative)`, `* 512`) on a cold /host/info.
    @Test(arguments: [(65535, 65535), (65535, 32768)])
    func sunLabelWhoseNumbersOverflowHasNoPartition(geometry: (heads: Int, sectors: Int)) throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = try Self.sunLabel(in: directory, heads: geometry.heads, sectors: geometry.sectors, startCylinder: 0xFFFF_FFFF)
        let probe = try BlockProbe.probe(path: image.path)
        #expect(probe.partitionTable == "sun")
        #expect(probe.partitions.isEmpty, "\(probe.partitions)")
    }

    /// A valid GPT of 20,000 entries (libblkid bounds neither their count nor the
    /// probes made of each): before, each was probed, 1.7 s and more per cold request,
    /// minutes for a stick's worth. The kernel shows at most 256 partitions of a disk.
    @Test func partitionTableOfMoreEntriesThanTheKernelShowsIsNotRead() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = directory.appendingPathComponent("many.img")
        let script = """
            import struct, sys, uuid, zlib
            count, out, total = int(sys.argv[1]), sys.argv[2], 64 * 1024 * 1024 // 512
            entry_sectors = (count * 128 + 511) // 512
            first, last = 2 + entry_sectors, total - 2 - entry_sectors
            image = bytearray(total * 512)
            image[450] = 0xEE
            struct.pack_into("<II", image, 454, 1, total - 1)
            image[510:512] = b"\\x55\\xaa"
            linux = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4").bytes_le
            entries = bytearray(count * 128)
            for index in range(count):
                struct.pack_into("<16s16sQQQ", entries, index * 128, linux, uuid.uuid4().bytes_le, first, first + 7, 0)
            def header(mine, other, entries_at):
                head = bytearray(92)
                struct.pack_into("<8sIIIIQQQQ16sQIII", head, 0, b"EFI PART", 0x10000, 92, 0, 0, mine, other, first, last,
                                 uuid.uuid4().bytes_le, entries_at, count, 128, zlib.crc32(entries))
                struct.pack_into("<I", head, 16, zlib.crc32(head))
                return head
            image[512:604] = header(1, total - 1, 2)
            image[1024:1024 + len(entries)] = entries
            backup = (total - 1 - entry_sectors) * 512
            image[backup:backup + len(entries)] = entries
            image[(total - 1) * 512:(total - 1) * 512 + 92] = header(total - 1, 1, total - 1 - entry_sectors)
            open(out, "wb").write(image)
            """
        _ = try TestSupport.output(["python3", "-c", script, "20000", image.path])
        // partx reads the same table: 20,000 entries.
        let listed = try TestSupport.output(["partx", "-g", "-o", "NR", image.path]).split(separator: "\n").count
        #expect(listed == 20000)
        let probe = try BlockProbe.probe(path: image.path)
        #expect(probe.partitionTable == "gpt")
        #expect(probe.partitions.isEmpty, "\(probe.partitions.count) entries probed")
    }

    @Test func unopenableDeviceIsAnErrorOfThatDeviceOnly() {
        #expect(throws: HardwareError.cannotOpen(path: "/nonexistent/disk", errno: ENOENT)) {
            try BlockProbe.probe(path: "/nonexistent/disk")
        }
    }
}
