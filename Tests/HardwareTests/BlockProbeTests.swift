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

    @Test func unopenableDeviceIsAnErrorOfThatDeviceOnly() {
        #expect(throws: HardwareError.cannotOpen(path: "/nonexistent/disk", errno: ENOENT)) {
            try BlockProbe.probe(path: "/nonexistent/disk")
        }
    }
}
