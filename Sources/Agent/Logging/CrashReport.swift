import Glibc

/// One line on standard error when the agent dies of a fault or a failed runtime check
/// (an overflow traps with SIGILL), so that a crash shows in the container's log. The
/// release binary carries no debug information and links the Swift runtime statically,
/// which finds no backtracer: without this line a crash would print nothing at all.
/// `SWIFT_BACKTRACE=enable=yes,swift-backtrace=<toolchain>/usr/libexec/swift/linux/swift-backtrace-static`
/// turns Swift's backtracer on instead (function names and addresses, no source paths);
/// its handlers are then left in place.
package enum CrashReport {
    static let signals = [SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV]

    package static func install() {
        for number in signals {
            var current = sigaction()
            guard sigaction(number, nil, &current) == 0, current.__sigaction_handler.sa_handler == nil else { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let line: StaticString = switch number {
                case SIGILL: "deckhand crashed: SIGILL (a failed runtime check, such as an arithmetic overflow)\n"
                case SIGTRAP: "deckhand crashed: SIGTRAP (a failed runtime check)\n"
                case SIGABRT: "deckhand crashed: SIGABRT (aborted)\n"
                case SIGBUS: "deckhand crashed: SIGBUS (a bad memory access)\n"
                case SIGFPE: "deckhand crashed: SIGFPE (an arithmetic fault)\n"
                default: "deckhand crashed: SIGSEGV (a bad memory access)\n"
                }
                // Only async-signal-safe calls: write(2) of constant bytes, then die of the
                // same signal with its default action (the handler was reset on entry).
                _ = write(STDERR_FILENO, line.utf8Start, line.utf8CodeUnitCount)
                raise(number)
            }
            action.sa_flags = Int32(bitPattern: SA_RESETHAND) | SA_NODEFER
            sigaction(number, &action, nil)
        }
    }
}
