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
/// returns (the mount is skipped at once), so a hung mount costs one thread, not one
/// per request.
enum BoundedCall {
    private static let running = Mutex<Set<String>>([])

    /// `body()`, if it returns within `seconds` and no call under `key` is still
    /// running; else nil (the call goes on on its own thread until it returns).
    static func run<T: Sendable>(_ key: String, within seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        guard running.withLock({ $0.insert(key).inserted }) else { return nil }
        let call = Call(key: key, body: body)
        guard call.start() else {
            running.withLock { _ = $0.remove(key) }
            return nil
        }
        return call.wait(seconds: seconds)
    }

    /// Keys of calls still running (a stuck mount's `statvfs`): for tests and warnings.
    static var stillRunning: Set<String> { running.withLock { $0 } }

    private final class Call<T: Sendable>: @unchecked Sendable {
        // Safe: `result` is written once by the call's thread before it posts `done`,
        // and read by the waiter only after `done` was posted.
        private let key: String
        private let body: @Sendable () -> T
        private let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        private var result: T?

        init(key: String, body: @escaping @Sendable () -> T) {
            self.key = key
            self.body = body
            sem_init(done, 0, 0)
        }

        deinit {
            sem_destroy(done)
            done.deallocate()
        }

        /// Starts the call's thread, which holds the call until it has posted `done`.
        func start() -> Bool {
            startThread { [self] in
                result = body()
                BoundedCall.running.withLock { _ = $0.remove(key) }
                sem_post(done)
            }
        }

        func wait(seconds: Double) -> T? {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            let nanoseconds = Int(deadline.tv_nsec) + Int(seconds * 1_000_000_000)
            deadline.tv_sec += nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
            while sem_timedwait(done, &deadline) != 0 {
                guard errno == EINTR else { return nil }
            }
            return result
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
    // A statvfs or a probe needs little stack.
    pthread_attr_setstacksize(&attributes, 256 * 1024)
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
