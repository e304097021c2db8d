import Foundation

/// Runs a real program (curl, docker, deckhand) and collects what it printed.
package struct CommandResult {
    package var status: Int32
    package var stdout: Data
    package var stderr: Data
    package var output: String { String(decoding: stdout, as: UTF8.self) }
    package var errorOutput: String { String(decoding: stderr, as: UTF8.self) }
}

/// posix_spawn and waitpid directly: Foundation's Process on Linux was seen to miss a
/// child's exit (leaving a zombie and a test waiting forever), and this harness runs
/// hundreds of children.
package enum Command {
    /// Runs `executable` with `arguments`, feeding `input` to its stdin and closing it,
    /// and gives up after `timeout` seconds (the child is killed, status -1). Output
    /// is collected until the child exits; what its own background children keep
    /// writing afterwards is not waited for.
    package static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        input: Data? = nil,
        timeout: TimeInterval = 60
    ) throws -> CommandResult {
        let path = executable.hasPrefix("/") ? executable : try which(executable)
        var stdinPipe: [Int32] = [0, 0], stdoutPipe: [Int32] = [0, 0], stderrPipe: [Int32] = [0, 0]
        // Tests run children from several threads at once: from the pipes' creation
        // until the child's ends are closed here, no other child may be spawned, or it
        // would inherit them (and this child's output would not end until that one's
        // does). Close-on-exec keeps our own ends out of later children.
        spawnLock.lock()
        guard pipe(&stdinPipe) == 0, pipe(&stdoutPipe) == 0, pipe(&stderrPipe) == 0 else {
            spawnLock.unlock()
            throw TestSetupError("pipe failed")
        }
        for fd in stdinPipe + stdoutPipe + stderrPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        for fd in stdinPipe + stdoutPipe + stderrPipe { posix_spawn_file_actions_addclose(&actions, fd) }

        let spawned = spawnChild(path, arguments, environment: environment, actions: &actions)
        close(stdinPipe[0]); close(stdoutPipe[1]); close(stderrPipe[1])
        spawnLock.unlock()
        let pid: pid_t
        switch spawned {
        case .success(let child):
            pid = child
        case .failure(let error):
            close(stdinPipe[1]); close(stdoutPipe[0]); close(stderrPipe[0])
            throw error
        }

        let collected = CollectedOutput()
        let readers = DispatchGroup()
        for (fd, isOut) in [(stdoutPipe[0], true), (stderrPipe[0], false)] {
            readers.enter()
            Thread.detachNewThread {
                var data = Data()
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = read(fd, &buffer, buffer.count)
                    if count > 0 { data.append(contentsOf: buffer[0..<count]); continue }
                    if count < 0 && errno == EINTR { continue }
                    break
                }
                close(fd)
                collected.set(data, isOut: isOut)
                readers.leave()
            }
        }
        let stdinWriter = stdinPipe[1]
        let writer = Thread {
            if let input {
                input.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = write(stdinWriter, bytes.baseAddress! + offset, bytes.count - offset)
                        if written < 0 { if errno == EINTR { continue }; break }
                        offset += written
                    }
                }
            }
            close(stdinWriter)
        }
        signal(SIGPIPE, SIG_IGN)
        writer.start()

        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { break }
            if Date() >= deadline, !timedOut {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(5_000)
        }
        // A background child that inherited the pipes may keep them open: give the
        // readers a moment, then take what they have.
        _ = readers.wait(timeout: .now() + 5)
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return CommandResult(status: timedOut ? -1 : exitStatus, stdout: collected.out, stderr: collected.err)
    }

    /// Starts a long-running child (an agent) with its standard output discarded and
    /// its standard error inherited, or written to `errorLog`; see `ChildProcess`.
    package static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], errorLog: String? = nil
    ) throws -> ChildProcess {
        let path = executable.hasPrefix("/") ? executable : try which(executable)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if let errorLog {
            posix_spawn_file_actions_addopen(&actions, 2, errorLog, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        }
        spawnLock.lock()
        defer { spawnLock.unlock() }
        return ChildProcess(pid: try spawnChild(path, arguments, environment: environment, actions: &actions).get())
    }

    /// posix_spawn with the test's environment plus `environment`. The child starts with
    /// no signal blocked and SIGPIPE at its default, as from a shell: the test runner's
    /// threads block most signals, and a child would otherwise inherit that mask (a
    /// script's SIGTERM or SIGUSR1 handler would then never run).
    private static func spawnChild(
        _ path: String, _ arguments: [String], environment: [String: String], actions: inout posix_spawn_file_actions_t
    ) -> Result<pid_t, TestSetupError> {
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        markDescriptorsCloseOnExec()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard spawned == 0 else { return .failure(TestSetupError("cannot start \(path): \(String(cString: strerror(spawned)))")) }
        return .success(pid)
    }

    private static let spawnLock = NSLock()

    /// Every descriptor of this process past stderr made close-on-exec, so that a child
    /// gets only its 0, 1 and 2: sockets other tests hold open (some made without
    /// `SOCK_CLOEXEC`) were inherited by agents started meanwhile, which then held
    /// listeners that were not theirs. Called under `spawnLock`, just before the spawn.
    private static func markDescriptorsCloseOnExec() {
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    package static func which(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw TestSetupError("\(name) is not installed")
    }
}

private final class CollectedOutput: @unchecked Sendable {
    // Each stream is written once by its reader thread under the lock; read after
    // the readers are done or given up on.
    private var outData = Data()
    private var errData = Data()
    private let lock = NSLock()
    var out: Data { lock.lock(); defer { lock.unlock() }; return outData }
    var err: Data { lock.lock(); defer { lock.unlock() }; return errData }
    func set(_ data: Data, isOut: Bool) {
        lock.lock(); defer { lock.unlock() }
        if isOut { outData = data } else { errData = data }
    }
}

/// A child started by `Command.spawn`, reaped by `stop()`.
package final class ChildProcess {
    package let pid: pid_t
    private var exited = false
    /// The signal that ended the child, once `isRunning` has seen it end of one.
    package private(set) var terminatingSignal: Int32?

    init(pid: pid_t) { self.pid = pid }

    package var isRunning: Bool {
        guard !exited else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exited = true
            // WIFSIGNALED and WTERMSIG are macros Swift does not import.
            let signal = status & 0x7f
            if signal != 0 && signal != 0x7f { terminatingSignal = signal }
        }
        return !exited
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; always reaps the child.
    package func stop(grace: TimeInterval = 5) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            exited = true
        }
    }

    deinit { stop() }
}

/// Why a test could not set up what it needs (a missing program, engine or binary).
package struct TestSetupError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// What SwiftPM built for this test run.
package enum BuiltProducts {
    /// The `deckhand` executable SwiftPM built beside the test bundle (the bundle is a
    /// file in the build directory, or a directory inside it).
    package static var deckhand: String {
        get throws {
            let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            var directory = URL(fileURLWithPath: me).deletingLastPathComponent()
            while directory.path != "/" {
                let path = directory.appendingPathComponent("deckhand").path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
                directory.deleteLastPathComponent()
            }
            throw TestSetupError("no deckhand binary beside \(me): build with swift build --build-tests")
        }
    }
}
