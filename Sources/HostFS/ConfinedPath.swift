/// A path relative to a `ConfinedRoot`, cleaned lexically the way Go's `filepath.Clean`
/// does with the root as `/`: empty and `.` components dropped, `..` removes the
/// previous component and stops at the root. Leading `/` means the root, not the host's.
/// The kernel still resolves symbolic links confined; this only keeps `..` out of names.
public struct ConfinedPath: Sendable, Hashable, CustomStringConvertible {
    /// The components, each a valid `FileName`; empty for the root itself.
    public let components: [FileName]

    /// The root of the confined tree.
    public static let root = ConfinedPath(components: [])

    /// Parses `path` (absolute or relative, both meaning "from the root").
    /// Throws `invalidArgument` for a NUL byte or an over-long component.
    public init(_ path: String) throws(HostFSError) {
        if path.utf8.contains(0) {
            throw .invalidArgument("a path may not contain a NUL byte")
        }
        var kept: [FileName] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".":
                continue
            case "..":
                // Clamped: `..` at the root stays at the root, as in chroot.
                _ = kept.popLast()
            default:
                kept.append(try FileName(String(part)))
            }
        }
        self.components = kept
    }

    /// A path made of already validated components.
    public init(components: [FileName]) {
        self.components = components
    }

    /// Whether this is the root itself.
    public var isRoot: Bool { components.isEmpty }

    /// The last component, or nil for the root.
    public var lastComponent: FileName? { components.last }

    /// The path without its last component (the root's parent is the root).
    public var parent: ConfinedPath { ConfinedPath(components: Array(components.dropLast())) }

    /// This path with `name` appended.
    public func appending(_ name: FileName) -> ConfinedPath {
        ConfinedPath(components: components + [name])
    }

    /// The form handed to openat2 beneath the root: `a/b`, or `.` for the root.
    var relativeString: String {
        isRoot ? "." : components.map(\.value).joined(separator: "/")
    }

    /// The path as the client sees it, from the root: `/a/b`, or `/`.
    public var description: String {
        "/" + components.map(\.value).joined(separator: "/")
    }
}
