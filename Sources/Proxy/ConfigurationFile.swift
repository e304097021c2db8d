import Glibc

/// A file an operator names in the configuration (secrets, the TLS certificate and
/// key, the engine's TLS files), read whole at start: only a regular file, of at most `limit` bytes, opened
/// without waiting. A FIFO or a device named by mistake would otherwise block
/// start-up for good with nothing logged, or be read without end (`/dev/zero`).
public enum ConfigurationFile {
    /// Why a file cannot be used; the description completes "expected …".
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case unreadable(errno: Int32)
        case notAFile
        case tooLarge(limit: Int)
        /// `guarded` and someone other than root and this process's user may change it.
        case writableByOthers(owner: UInt32, mode: UInt32)

        public var description: String {
            switch self {
            case .unreadable(let code): return "a readable file (\(String(cString: strerror(code))))"
            case .notAFile: return "a regular file"
            case .tooLarge(let limit): return "a file of at most \(limit / 1024) KiB"
            case .writableByOthers(let owner, let mode):
                return "a file only root or the agent's user may change (owner uid \(owner), mode \(String(mode & 0o7777, radix: 8)))"
            }
        }
    }

    /// `guarded`: the file decides who gets in (the shared secrets), so it must be one
    /// only root or this process's user can change, as OpenSSH asks of its keys: owned
    /// by one of them, writable by no other user and by no group but root's or this
    /// process's. Whoever else could write it could add a secret of their own, which a
    /// running agent picks up within seconds. Checked on what the path leads to
    /// (Docker and Kubernetes secrets are reached through links).
    public static func read(_ path: String, limit: Int, guarded: Bool = false) throws(Problem) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadable(errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notAFile }
        if guarded, !isGuarded(owner: info.st_uid, group: info.st_gid, mode: info.st_mode) {
            throw .writableByOthers(owner: info.st_uid, mode: info.st_mode)
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(errno: errno)
            }
            if count == 0 { return bytes }
            bytes += buffer[..<count]
            guard bytes.count <= limit else { throw .tooLarge(limit: limit) }
        }
    }

    static func isGuarded(owner: uid_t, group: gid_t, mode: mode_t) -> Bool {
        let user = geteuid()
        guard owner == 0 || owner == user else { return false }
        if mode & S_IWOTH != 0 { return false }
        if mode & S_IWGRP != 0, group != 0, group != getegid() { return false }
        return true
    }
}
