import Foundation
import TestCommands

/// Debian's Chromium, headless, with a profile of its own and in a process group of its
/// own, so that `stop()` ends the browser and every helper process it started. It picks
/// its own DevTools port (`--remote-debugging-port=0`) and writes it into the profile.
final class HeadlessChromium {
    let process: ChildProcess
    let profile: URL
    let devToolsPort: Int
    private var stopped = false

    init() throws {
        guard let chromium = try? Command.which("chromium") else {
            throw TestSetupError("chromium is not installed: run scripts/setup (Debian's chromium package)")
        }
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("deckhand-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        let log = profile.appendingPathComponent("chromium.log")
        // setsid makes the browser the leader of a new process group, without a fork:
        // the pid here is Chromium's, and also the group's id.
        process = try Command.spawn(try Command.which("setsid"), [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--user-data-dir=\(profile.path)", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            "--window-size=1000,700", "about:blank",
        ], errorLog: log.path)
        let portFile = profile.appendingPathComponent("DevToolsActivePort")
        var port: Int?
        for _ in 0..<300 where process.isRunning {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let line = text.split(separator: "\n").first {
                port = Int(line)
                if port != nil { break }
            }
            usleep(100_000)
        }
        guard let port else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            Self.stop(process, profile: profile)
            throw TestSetupError("chromium gave no DevTools port within 30 s: \(output.suffix(2000))")
        }
        devToolsPort = port
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        Self.stop(process, profile: profile)
    }

    private static func stop(_ process: ChildProcess, profile: URL) {
        if process.isRunning {
            kill(-process.pid, SIGTERM)
            process.stop(grace: 5)
        }
        // Renderers and zygotes that outlived the browser process.
        kill(-process.pid, SIGKILL)
        try? FileManager.default.removeItem(at: profile)
    }

    deinit { stop() }
}
