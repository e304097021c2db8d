#if canImport(Glibc)
import Glibc
#endif

/// The host's udev database read as files, for when it is not the one libudev reads
/// (the agent in a container sees the host's at `/host/run/udev/data`, and its own
/// `/run/udev` is empty). Each device's entry is `b<major>:<minor>` with `E:KEY=VALUE` lines.
struct UdevDatabase: Sendable {
    let directory: String

    /// The properties udev recorded for the block device `major:minor`, empty when none.
    func blockDeviceProperties(major: String, minor: String) -> [String: String] {
        let path = "\(directory)/b\(major):\(minor)"
        guard let file = fopen(path, "re") else { return [:] }
        defer { fclose(file) }
        var properties: [String: String] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("E:"), let equals = text.firstIndex(of: "=") else { continue }
            let key = String(text[text.index(text.startIndex, offsetBy: 2)..<equals])
            var value = String(text[text.index(after: equals)...])
            if value.hasSuffix("\n") { value.removeLast() }
            properties[key] = value
        }
        return properties
    }
}
