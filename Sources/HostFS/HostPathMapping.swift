/// Maps the paths Portainer's host browser sends onto the host root. Portainer assumes
/// the host's `/` is bind-mounted at `/host` in the agent, so it sends `/host/etc/...`;
/// the agent may run elsewhere with a different host root (`/`, or a test folder), so the
/// prefix is dropped and the rest is taken relative to whatever root the agent opened.
public struct HostPathMapping: Sendable, Hashable {
    /// The prefix Portainer puts before host paths, `/host` unless configured otherwise.
    public let mountPoint: ConfinedPath

    /// Portainer's own convention: host paths under `/host`.
    public static let portainer = try! HostPathMapping(mountPoint: "/host") // a valid literal

    /// A mapping that drops `mountPoint` (`/host` by default) from the paths it maps.
    public init(mountPoint: String = "/host") throws(HostFSError) {
        self.mountPoint = try ConfinedPath(mountPoint)
    }

    /// The path beneath the host root that `path` names. The path is cleaned first (so
    /// `//host/./etc` is `/host/etc`), then a leading `/host` is dropped; any other path
    /// (`/etc`, `etc`, `/hostile`) is taken from the root as it is.
    /// Throws `invalidArgument` for a NUL byte or an invalid component.
    public func confinedPath(for path: String) throws(HostFSError) -> ConfinedPath {
        let cleaned = try ConfinedPath(path)
        let prefix = mountPoint.components
        guard !prefix.isEmpty, cleaned.components.starts(with: prefix) else {
            return cleaned
        }
        return ConfinedPath(components: Array(cleaned.components.dropFirst(prefix.count)))
    }
}
