/// A filesystem (or swap, or another recognised superblock) as libblkid reports it:
/// the `TYPE`, `UUID` and `LABEL` that `blkid` prints.
public struct Filesystem: Sendable, Hashable, Codable {
    /// libblkid's type name (`ext4`, `vfat`, `swap`, `xfs`, `crypto_LUKS`...).
    public var type: String
    public var uuid: String?
    public var label: String?

    public init(type: String, uuid: String? = nil, label: String? = nil) {
        self.type = type
        self.uuid = uuid
        self.label = label
    }

    enum CodingKeys: String, CodingKey {
        case type = "Type"
        case uuid = "UUID"
        case label = "Label"
    }
}
