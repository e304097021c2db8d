import Foundation
import Testing

/// The suites' umockdev runner reports the command's own status, not umockdev-run's:
/// umockdev-run 0.17 can die of SIGSEGV on its way out after its command is done.
@Suite("Commands run under umockdev-run")
struct UmockdevRunTests {
    /// umockdev-run killed by SIGSEGV after its command printed and while it finishes:
    /// the command's output and status 0 are the result, as without the crash.
    @Test func umockdevRunDyingAfterItsCommandIsNotTheCommandsFailure() throws {
        let script = "echo out; kill -SEGV $(ps -o ppid= -p $PPID); sleep 0.2; echo after"
        let result = try TestSupport.run(TestSupport.umockdevRun("gpu") + ["sh", "-c", script])
        #expect(result.status == 0)
        #expect(result.stdout == "out\nafter\n")
    }

    /// A command that dies of a signal itself still fails, with 128 + the signal.
    @Test func aCommandDyingOfASignalStillFails() throws {
        let result = try TestSupport.run(TestSupport.umockdevRun("gpu") + ["sh", "-c", "kill -SEGV $$"])
        #expect(result.status == 139)
        let exited = try TestSupport.run(TestSupport.umockdevRun("gpu") + ["sh", "-c", "exit 3"])
        #expect(exited.status == 3)
    }
}
