import Glibc

/// Unbuffered writes to a descriptor (standard error by default), whole or not at all
/// as far as the kernel allows: log lines and start-up errors must not interleave.
package enum StandardError {
    package static func write(_ bytes: [UInt8]) {
        _ = writeAll(bytes, to: STDERR_FILENO)
    }

    /// Retries short writes and EINTR; false on any other error.
    @discardableResult
    package static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }
}
