import Glibc
import Proxy

/// Whether this process may connect to the engine's socket, and when the socket's
/// permissions refuse it, one line that names the group that would let it in. The image
/// runs as a non-root user that reaches the socket through the socket's group, so a
/// deployment that forgot that group is told at start, not left with 502s.
package enum EngineSocketAccess {
    /// nil when the socket may be used, or is not there at all (that is reported when
    /// it is used); otherwise what refuses it and how to add its group.
    /// For a TCP engine there is no socket file to check: nil.
    package static func refusal(engine: EngineAddress) -> String? {
        guard case .unixSocket(let path) = engine else { return nil }
        return refusal(socket: path)
    }

    package static func refusal(socket: String) -> String? {
        // connect(2) on a unix socket needs write permission on its file.
        guard access(socket, W_OK) != 0, errno == EACCES else { return nil }
        var info = stat()
        guard stat(socket, &info) == 0 else { return nil }
        let mode = String(info.st_mode & 0o777, radix: 8)
        return "the engine socket \(socket) (uid \(info.st_uid), gid \(info.st_gid), mode \(mode)) refuses this process "
            + "(uid \(getuid()), groups \(groups().map(String.init).joined(separator: ","))): give it the socket's group, "
            + "--group-add \(info.st_gid) (docker run), --group \(info.st_gid) (docker service create) "
            + "or DOCKER_GID=\(info.st_gid) (deploy/ stack files)"
    }

    /// The process's group and supplementary groups.
    static func groups() -> [gid_t] {
        let count = getgroups(0, nil)
        var list = [gid_t](repeating: 0, count: Int(max(count, 0)))
        let filled = list.isEmpty ? 0 : getgroups(count, &list)
        let supplementary = list.prefix(Int(max(filled, 0)))
        return [getegid()] + supplementary.filter { $0 != getegid() }
    }
}
