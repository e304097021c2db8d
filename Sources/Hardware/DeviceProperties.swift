/// A device's udev properties: libudev's own, then the host's database file.
struct DeviceProperties {
    let device: UdevDevice
    let foreign: [String: String]

    init(device: UdevDevice, foreignDatabase: UdevDatabase?) {
        self.device = device
        if let foreignDatabase, let major = device.property("MAJOR"), let minor = device.property("MINOR") {
            foreign = foreignDatabase.blockDeviceProperties(major: major, minor: minor)
        } else {
            foreign = [:]
        }
    }

    subscript(key: String) -> String? {
        if let value = device.property(key) { return value }
        return foreign[key].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The human form of a value udev also stores escaped (`ID_MODEL_ENC`, `ID_FS_LABEL_ENC`).
    func encoded(_ key: String) -> String? {
        if let escaped = self[key + "_ENC"] {
            let decoded = trimmed(decodeUdevEscapes(escaped))
            if !decoded.isEmpty { return decoded }
        }
        return self[key]
    }

    /// The filesystem udev's blkid builtin recorded.
    var filesystem: Filesystem? {
        guard let type = self["ID_FS_TYPE"] else { return nil }
        return Filesystem(type: type, uuid: self["ID_FS_UUID"], label: encoded("ID_FS_LABEL"))
    }
}
