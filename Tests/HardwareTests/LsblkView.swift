import Foundation
import Hardware
import Testing

/// util-linux's `lsblk` view of the block devices, the independent truth that
/// `host-info`'s disk list is checked against, on the machine and under umockdev.
struct LsblkView {
    /// One `lsblk -J` entry, with its partitions as `children`.
    struct Device: Decodable {
        var name: String
        var size: UInt64
        var model: String?
        var serial: String?
        var rota: Bool
        var rm: Bool
        var tran: String?
        var wwn: String?
        var pttype: String?
        var ptuuid: String?
        var fstype: String?
        var uuid: String?
        var label: String?
        var partuuid: String?
        var partlabel: String?
        var type: String
        var children: [Device]?
    }

    static let columns = "NAME,SIZE,MODEL,SERIAL,ROTA,RM,TRAN,WWN,PTTYPE,PTUUID,FSTYPE,UUID,LABEL,PARTUUID,PARTLABEL,TYPE"

    /// The whole disks lsblk lists. Under umockdev its top level repeats the partitions,
    /// not always typed `part` (a USB stick's is `disk`): any disk's child is left out.
    var disks: [Device]

    init(json: String) throws {
        struct Listing: Decodable { var blockdevices: [Device] }
        let listing = try JSONDecoder().decode(Listing.self, from: Data(json.utf8))
        // The kernel's virtual block device families, which host-info leaves out.
        let virtual = ["loop", "ram", "zram", "dm-", "md", "nbd"]
        let partitions = Set(listing.blockdevices.flatMap { $0.children ?? [] }.map(\.name))
        disks = listing.blockdevices
            .filter { device in
                device.type == "disk" && !partitions.contains(device.name) && !virtual.contains { device.name.hasPrefix($0) }
            }
            .sorted { $0.name < $1.name }
    }

    /// lsblk under umockdev on the fixture tree `name`.
    ///
    /// umockdev 0.17 files a block device's `/sys/dev` link under `char` unless its path
    /// has a `/block/` component, which an NVMe namespace's (`.../nvme/nvme0/nvme0n1`)
    /// does not; the kernel files it under `block`, where lsblk looks. The testbed is
    /// given that link before lsblk runs, nothing else.
    static func underFixture(_ name: String) throws -> LsblkView {
        let refile = #"""
            mkdir -p "$UMOCKDEV_DIR/sys/dev/block" && cd "$UMOCKDEV_DIR/sys/dev" && for link in char/*; do
              [ -e "$link/subsystem" ] || continue
              case "$(readlink -f "$link/subsystem")" in */class/block) ln -s "$(readlink "$link")" "block/${link#char/}";; esac
            done
            exec lsblk -J -b -o "$0"
            """#
        return try LsblkView(json: TestSupport.underFixture(name, ["sh", "-c", refile, columns]))
    }

    /// lsblk on the machine running the tests.
    static func onMachine() throws -> LsblkView {
        try LsblkView(json: TestSupport.output(["lsblk", "-J", "-b", "-o", columns]))
    }

    /// Every field of host-info's disks against lsblk's.
    ///
    /// What lsblk 2.38 cannot see, and what stands in for it:
    /// - SERIAL comes only from udev's database; a machine without udevd (this one, and
    ///   the one `virtio-vm` was recorded on) has none, so the truth is then the kernel's
    ///   own `serial` attribute, read with `cat` through `readSysfs`.
    /// - TRAN for a SCSI disk needs `/sys/class/scsi_host`, which no umockdev tree holds,
    ///   and lsblk 2.38 names no virtio transport; `blindTransports` lists where lsblk is
    ///   expected to say nothing (and the test fails if it starts to say something).
    /// - VENDOR is not compared: lsblk prints the raw `device/vendor` (a SCSI inquiry
    ///   string, or `0x1af4` for virtio) where host-info names the PCI vendor; those names
    ///   are checked against lspci.
    /// - A partition's ROTA, MODEL and the like are the disk's; host-info has them once.
    static func expect(
        _ disks: [PhysicalDisk], match view: LsblkView, blindTransports: Set<DiskTransport>,
        readSysfs: (String) throws -> String?
    ) throws {
        #expect(disks.map(\.name) == view.disks.map(\.name))
        for (disk, truth) in zip(disks, view.disks) {
            #expect(disk.size == truth.size, "\(disk.name)")
            #expect(disk.model == truth.model, "\(disk.name)")
            let serial = try truth.serial ?? readSysfs("block/\(disk.name)/serial")
            #expect(disk.serial == serial, "\(disk.name)")
            #expect(disk.rotational == truth.rota, "\(disk.name)")
            #expect(disk.removable == truth.rm, "\(disk.name)")
            if let transport = truth.tran {
                #expect(disk.transport?.rawValue == transport, "\(disk.name)")
            } else {
                #expect(disk.transport.map(blindTransports.contains) ?? true, "\(disk.name): lsblk names no transport")
            }
            #expect(disk.wwn == truth.wwn, "\(disk.name)")
            #expect(disk.partitionTable == truth.pttype, "\(disk.name)")
            #expect(disk.partitionTableUUID == truth.ptuuid, "\(disk.name)")
            #expect(disk.filesystem?.type == truth.fstype, "\(disk.name)")
            #expect(disk.filesystem?.uuid == truth.uuid, "\(disk.name)")
            #expect(disk.filesystem?.label == truth.label, "\(disk.name)")
            let parts = truth.children ?? []
            #expect(disk.partitions.map(\.name) == parts.map(\.name), "\(disk.name)")
            for (partition, part) in zip(disk.partitions, parts) {
                #expect(partition.size == part.size, "\(partition.name)")
                #expect(partition.filesystem?.type == part.fstype, "\(partition.name)")
                #expect(partition.filesystem?.uuid == part.uuid, "\(partition.name)")
                #expect(partition.filesystem?.label == part.label, "\(partition.name)")
                #expect(partition.partitionUUID == part.partuuid, "\(partition.name)")
                #expect(partition.partitionLabel == part.partlabel, "\(partition.name)")
            }
        }
    }
}
