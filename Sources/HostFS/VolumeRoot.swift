import ASCIIText
#if canImport(Glibc)
import Glibc
#endif

/// Where Docker keeps named volumes, and how to open one as a `ConfinedRoot`: the
/// volume's content is `<volumes root>/<name>/_data`. The name is checked the way Docker
/// checks it, so it is a single plain component before it reaches the filesystem.
public struct VolumeRoot: Sendable, Hashable {
    /// The folder holding the volumes, `/var/lib/docker/volumes` by default.
    public let path: String
    /// How the opened roots resolve paths.
    public let resolution: PathResolution

    /// Volumes under `path`, their roots resolving paths with `resolution`.
    public init(path: String = "/var/lib/docker/volumes", resolution: PathResolution = .automatic) {
        self.path = path
        self.resolution = resolution
    }

    /// Whether `name` is a valid Docker volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    public static func isValidName(_ name: String) -> Bool {
        name.utf8.count >= 2 && ASCII.isRestrictedName(name, maximumLength: .max)
    }

    /// The confined root of volume `name`'s content. Throws `invalidArgument` for a name
    /// Docker would refuse and `notFound` when there is no such volume (or no volumes root).
    public func open(volume name: String) throws(HostFSError) -> ConfinedRoot {
        guard Self.isValidName(name) else {
            throw .invalidArgument("invalid volume name \"\(name)\": it must match [a-zA-Z0-9][a-zA-Z0-9_.-]+")
        }
        let volumes: ConfinedRoot
        do {
            volumes = try ConfinedRoot(path: path, resolution: resolution)
        } catch .notFound {
            throw .notFound(path: "volume \(name)")
        }
        // The name is one valid component, so this cannot throw; `_data` is resolved
        // confined beneath the volumes root like any other path.
        let data = ConfinedPath(components: [try FileName(name), try FileName("_data")])
        do throws(SystemError) {
            let descriptor = try volumes.resolver.open(data, flags: O_RDONLY | O_DIRECTORY)
            return ConfinedRoot(adopting: descriptor, resolution: resolution)
        } catch where error.code == ENOENT {
            throw .notFound(path: "volume \(name)")
        } catch {
            throw HostFSError.from(errno: error.code, path: "volume \(name)", operation: error.operation)
        }
    }

    /// The confined root of volume `name`'s content at `mountpoint`, the folder its
    /// engine names for it (`Mountpoint` of `GET /volumes/{name}`: Podman keeps volumes
    /// elsewhere than Docker, and either may be configured to). The path is resolved
    /// beneath `hostRoot` when given (the host's `/` as the agent sees it, with host
    /// management), else as the agent sees it; either way confined, and the volume's
    /// root is that folder. Throws `notFound` when the folder is not there, or when the
    /// path is not `…/<name>/_data`: Docker's and Podman's local volumes all are, and
    /// anything else (a volume plugin's mount point, or an engine that is not one) could
    /// name any folder, `/` or the agent's own secrets, to a client allowed that volume.
    public static func open(
        volume name: String, mountpoint: String, hostRoot: String?, resolution: PathResolution = .automatic
    ) throws(HostFSError) -> ConfinedRoot {
        guard mountpoint.hasPrefix("/") else { throw .notFound(path: "volume \(name)") }
        let named = mountpoint.split(separator: "/", omittingEmptySubsequences: true).suffix(2)
        guard named.count == 2, named.first.map(String.init) == name, named.last == "_data" else {
            throw .notFound(path: "volume \(name)")
        }
        let base: ConfinedRoot
        do {
            base = try ConfinedRoot(path: hostRoot ?? "/", resolution: resolution)
        } catch .notFound {
            throw .notFound(path: "volume \(name)")
        }
        let data = try ConfinedPath(mountpoint)
        do throws(SystemError) {
            let descriptor = try base.resolver.open(data, flags: O_RDONLY | O_DIRECTORY)
            return ConfinedRoot(adopting: descriptor, resolution: resolution)
        } catch where error.code == ENOENT || error.code == ENOTDIR {
            throw .notFound(path: "volume \(name)")
        } catch {
            throw HostFSError.from(errno: error.code, path: "volume \(name)", operation: error.operation)
        }
    }
}
