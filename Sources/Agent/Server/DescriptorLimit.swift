import Glibc

/// The process's open-file limit, and the client connections it leaves room for.
///
/// A process inherits a soft `RLIMIT_NOFILE` that is often 1024. The original agent,
/// built with Go, runs with its hard limit (Go raises the soft one at start); a Swift
/// process does not unless asked. And the connection limit (`ConnectionLimit`, which
/// evicts the oldest unsigned connection to admit a new one) only works while
/// `accept` does: past the descriptor limit, `accept` fails before any connection is
/// seen, nothing is evicted, and silent connections lock every client out.
enum DescriptorLimit {
    /// Descriptors kept for everything but client connections: listeners, engine and
    /// peer pools, files being served or uploaded, udev, the thread pool's work.
    static let reserve = 256

    /// Raises the soft limit to the hard one; returns the soft limit now in force.
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// The most client connections `descriptors` leave room for: each may hold two (its
    /// socket and the engine connection kept for it), beside the reserve.
    static func connections(for descriptors: Int) -> Int {
        max(16, (descriptors - reserve) / 2)
    }
}
