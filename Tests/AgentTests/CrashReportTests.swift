import Foundation
import Testing
@testable import Agent

/// How a crash shows (issue 13, finding 7): one short line, no source paths.
@Suite("Crash report")
struct CrashReportTests {
    @Test("a crashing agent writes one line naming the signal, no source path, and dies of that signal", arguments: [SIGSEGV, SIGILL, SIGBUS])
    func oneLine(signal: Int32) throws {
        // What the release binary does: its statically linked runtime finds no backtracer.
        // The debug build this test runs would otherwise start Swift's, with source paths.
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "SWIFT_BACKTRACE": "enable=no"])
        defer { agent.stop() }
        kill(agent.pid, signal)
        let deadline = Date().addingTimeInterval(10)
        while agent.process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(agent.process.terminatingSignal == signal)
        let lines = agent.logLines()
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.hasPrefix("deckhand crashed: SIG") == true, "\(lines)")
        #expect(!lines.contains { $0.contains(".swift") || $0.contains("/") }, "\(lines)")
    }
}
