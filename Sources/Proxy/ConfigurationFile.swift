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

        public var description: String {
            switch self {
            case .unreadable(let code): return "a readable file (\(String(cString: strerror(code))))"
            case .notAFile: return "a regular file"
            case .tooLarge(let limit): return "a file of at most \(limit / 1024) KiB"
            }
        }
    }

    public static func read(_ path: String, limit: Int) throws(Problem) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadable(errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notAFile }
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
}
