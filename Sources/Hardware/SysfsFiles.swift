#if canImport(Glibc)
import Glibc
#endif

/// Plain reads of sysfs and procfs files, for the sections libudev has no better
/// answer for. Every read may fail on its own (an attribute the driver does not
/// implement, `EINVAL` from a link that is down, a file only root may read): the
/// caller gets nil and reports the device without that field.
enum SysfsFiles {
    /// The file's contents, or nil when it cannot be opened or read. Small files only.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 { return nil }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An attribute with surrounding whitespace removed, nil when unreadable or blank.
    static func attribute(_ path: String) -> String? {
        read(path).map(trimmed).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The names in a directory, sorted, without `.` and `..`; empty when it cannot be listed.
    static func list(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A symbolic link's target, nil when `path` is not a readable link.
    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 1024)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The last component of a link's target (`../../bus/pci/drivers/e1000e` → `e1000e`).
    static func linkName(_ path: String) -> String? {
        link(path).flatMap { $0.split(separator: "/").last.map(String.init) }
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
