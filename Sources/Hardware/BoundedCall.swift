#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A system call that can block for good, waited for at most a while.
///
/// `statvfs` on a hard NFS mount whose server is gone, or on a FUSE mount whose daemon
/// stopped answering, does not return (nor can it be interrupted), and neither does
/// a read of a disk in error recovery. The inventory is collected on shared threads
/// (NIO's pool, which also serves the file browser), so one such mount must not take
/// them: each call runs on a thread of its own, and the caller waits for it at most
/// `seconds`. A call still running is not made again under the same key until it
/// returns (the mount or disk is skipped at once), so a hung one costs one thread, not
/// one per request.
enum BoundedCall {
    /// Calls still running, by key (each a `Call<T>`).
    private static let running = Mutex<[String: AnyObject]>([:])

    /// `body()`, if it returns within `seconds`; else nil (the call goes on on its own
    /// thread until it returns). A caller that finds a call under `key` still running
    /// waits for that one, until that call's own deadline: so concurrent inventories
    /// share a mount's call, and a call already past its time (a hung mount) makes
    /// callers give up at once.
    static func run<T: Sendable>(_ key: String, within seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let (found, isNew) = running.withLock { calls -> (Call<T>?, Bool) in
            if let existing = calls[key] { return (existing as? Call<T>, false) }
            let call = Call(key: key, seconds: seconds, body: body)
            calls[key] = call
            return (call, true)
        }
        guard let call = found else { return nil }
        if isNew, !call.start() {
            running.withLock { _ = $0.removeValue(forKey: key) }
            return nil
        }
        return call.wait()
    }

    private final class Call<T: Sendable>: @unchecked Sendable {
        // Safe: `result` and `finished` are read and written under `lock`.
        private let key: String
        private let body: @Sendable () -> T
        private let deadline: timespec
        private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var result: T?
        private var finished = false

        init(key: String, seconds: Double, body: @escaping @Sendable () -> T) {
            self.key = key
            self.body = body
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let nanoseconds = Int(now.tv_nsec) + Int(seconds * 1_000_000_000)
            now.tv_sec += nanoseconds / 1_000_000_000
            now.tv_nsec = nanoseconds % 1_000_000_000
            deadline = now
            pthread_mutex_init(lock, nil)
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(changed, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(changed)
            pthread_mutex_destroy(lock)
            changed.deallocate()
            lock.deallocate()
        }

        /// Starts the call's thread, which holds the call until it has finished.
        func start() -> Bool {
            startThread { [self] in
                let value = body()
                BoundedCall.running.withLock { _ = $0.removeValue(forKey: key) }
                pthread_mutex_lock(lock)
                result = value
                finished = true
                pthread_cond_broadcast(changed)
                pthread_mutex_unlock(lock)
            }
        }

        /// The result, if the call finishes by its deadline.
        func wait() -> T? {
            pthread_mutex_lock(lock)
            defer { pthread_mutex_unlock(lock) }
            var limit = deadline
            while !finished {
                if pthread_cond_timedwait(changed, lock, &limit) == ETIMEDOUT { break }
            }
            return finished ? result : nil
        }
    }
}

/// The work of one detached thread.
private final class ThreadWork: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Runs `work` on a new detached thread with a small stack; false when none could be made.
private func startThread(_ work: @escaping @Sendable () -> Void) -> Bool {
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    // A statvfs needs little stack, a libblkid probe (its probers' locals) more: 1 MiB
    // is reserved, not committed, so only the pages a call touches cost memory.
    pthread_attr_setstacksize(&attributes, 1024 * 1024)
    let retained = Unmanaged.passRetained(ThreadWork(work)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(&thread, &attributes, { argument in
        Unmanaged<ThreadWork>.fromOpaque(argument!).takeRetainedValue().run()
        return nil
    }, retained)
    guard created == 0 else {
        Unmanaged<ThreadWork>.fromOpaque(retained).release()
        return false
    }
    return true
}
