import Foundation
import Testing
import TestCommands

/// Portainer's container console as its users see it: headless Chromium shows a page
/// wired like Portainer's console page (xterm.js 3.8, `term.write(e.data)` on every
/// message), through a stand-in for Portainer's websocket proxy, to a real shell on the
/// test engine. A binary frame reaches that page as a Blob, which xterm.js cannot show.
@Suite("The console in a real browser")
struct BrowserConsoleTests {
    /// Where screenshots are kept after the run: $DECKHAND_TEST_ARTIFACTS, or
    /// .build/test-artifacts in the package.
    static var artifacts: URL {
        get throws {
            let directory = ProcessInfo.processInfo.environment["DECKHAND_TEST_ARTIFACTS"].map { URL(fileURLWithPath: $0) }
                ?? PortainerProxyStandIn.fixtures.deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent(".build/test-artifacts")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return directory
        }
    }

    /// What fixtures/browser-console/type-in-console.py reports.
    struct PageReport: Decodable {
        var opened: Bool
        /// The terminal's lines, read through xterm.js's API; nil when it never opened.
        var lines: [String]?
        /// `Object.prototype.toString` of each message's data: `[object String]` or `[object Blob]`.
        var messageTypes: [String]
        var closed: Bool?
    }

    @Test("`echo héllo €` typed in Portainer's console page shows the prompt, the echo and the output")
    func typeInTheBrowser() async throws {
        let (name, id) = try ConsoleTests.shellExec()
        defer { _ = try? DockerCLITests.engine(["rm", "-f", name]) }
        let screenshot = try Self.artifacts.appendingPathComponent("browser-console.png")
        try? FileManager.default.removeItem(at: screenshot)
        try await TestAgent.with { agent async throws in
            let proxy = try PortainerProxyStandIn(agentPort: agent.port, key: SigningKey())
            defer { proxy.stop() }
            let chromium = try HeadlessChromium()
            defer { chromium.stop() }
            let driver = PortainerProxyStandIn.fixtures.appendingPathComponent("type-in-console.py")
            let run = try Command.run("/usr/bin/python3", [
                driver.path, String(chromium.devToolsPort), proxy.consoleURL("exec", id: id), "echo héllo €", "héllo €", screenshot.path,
            ], timeout: 150)
            print("browser console: screenshot at \(screenshot.path)")
            guard run.status == 0 else {
                throw TestSetupError("type-in-console.py failed (\(run.status)): \(run.errorOutput)\nstand-in: \(proxy.log)")
            }
            let report = try JSONDecoder().decode(PageReport.self, from: run.stdout)
            #expect(report.opened, "the page's websocket never opened; stand-in: \(proxy.log)")
            let state = "closed: \(report.closed.map(String.init) ?? "unknown"); stand-in: \(proxy.log)"
            #expect(report.messageTypes == ["[object String]"], "websocket messages reached the page as \(report.messageTypes); \(state)")
            let lines = (report.lines ?? []).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            // The prompt with the echoed command, the command's output, then the next prompt.
            let echoed = lines.firstIndex(of: "/ # echo héllo €")
            #expect(echoed != nil, "terminal: \(lines); \(state)")
            if let echoed {
                #expect(Array(lines[(echoed + 1)...]) == ["héllo €", "/ #"], "terminal: \(lines)")
            }
            #expect(FileManager.default.fileExists(atPath: screenshot.path))
        }
    }
}
