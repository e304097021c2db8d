/// One path component that is safe to hand to a `*at` call on a directory descriptor:
/// not empty, not `.` or `..`, no `/`, no NUL, at most 255 bytes (NAME_MAX).
/// Validating here means the kernel never sees a name that could walk anywhere.
public struct FileName: Sendable, Hashable, CustomStringConvertible {
    /// The validated name.
    public let value: String

    /// Validates `value`; throws `HostFSError.invalidArgument` with the reason otherwise.
    public init(_ value: String) throws(HostFSError) {
        if value.isEmpty {
            throw .invalidArgument("a file name may not be empty")
        }
        if value == "." || value == ".." {
            throw .invalidArgument("\"\(value)\" is not a valid file name")
        }
        if value.utf8.contains(UInt8(ascii: "/")) {
            throw .invalidArgument("a file name may not contain '/': \(value)")
        }
        if value.utf8.contains(0) {
            throw .invalidArgument("a file name may not contain a NUL byte")
        }
        if value.utf8.count > 255 {
            throw .invalidArgument("a file name may not be longer than 255 bytes")
        }
        self.value = value
    }

    public var description: String { value }
}
