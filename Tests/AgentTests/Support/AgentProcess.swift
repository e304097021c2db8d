import Foundation
import TestCommands

/// The real `deckhand serve` binary in its own process, for what only a separate
/// process shows: its memory, its signals, its exit.
final class AgentProcess {
    let process: ChildProcess
    let port: Int
    /// Where the agent's standard error (its log) goes.
    let logPath: String
    /// Where the agent is asked (`host` as given, IPv6 in brackets; loopback IPv4 for a
    /// wildcard or the default).
    let baseURL: String
    var pid: Int32 { process.pid }

    /// Starts `deckhand serve` on `port` (a free one when nil) with `environment` added;
    /// its standard error goes to `logPath`. A `launcher` (a command line that runs the
    /// command line after it) runs the agent, e.g. in a device testbed. `host` is its
    /// `AGENT_HOST`; nil leaves it unset (the agent's default).
    init(port: Int? = nil, host: String? = "127.0.0.1", environment: [String: String], launcher: [String] = []) throws {
        self.port = try port ?? Self.freePort()
        let asked = host.flatMap { ["::", "0.0.0.0", "[::]"].contains($0) ? nil : $0 } ?? "127.0.0.1"
        baseURL = asked.contains(":") && !asked.hasPrefix("[") ? "https://[\(asked)]:\(self.port)" : "https://\(asked):\(self.port)"
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("deckhand-\(UUID().uuidString).log").path
        let command = launcher + [try BuiltProducts.deckhand, "serve"]
        var base = ["AGENT_PORT": String(self.port), "LOG_LEVEL": "ERROR"]
        base["AGENT_HOST"] = host
        process = try Command.spawn(command[0], Array(command.dropFirst()), environment: base.merging(environment) { $1 }, errorLog: logPath)
        for _ in 0..<200 {
            if let reply = try? Curl.request("GET", baseURL + "/ping", extra: ["-g"]), reply.status == 204 { return }
            usleep(50_000)
        }
        stop()
        throw TestSetupError("deckhand did not start on port \(port)")
    }

    /// Peak and current resident memory, in KiB, from /proc.
    func memory() throws -> (peak: Int, current: Int) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? -1
        }
        return (field("VmHWM"), field("VmRSS"))
    }

    func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Open descriptors that are not sockets (files and folders: what a file operation
    /// could leak; pooled engine connections come and go with their idle timeout).
    func openFileCount() -> Int {
        let folder = "/proc/\(pid)/fd"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return -1 }
        return names.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + $0))?.hasPrefix("socket:") == false }.count
    }

    /// The log lines written so far.
    func logLines() -> [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        process.stop()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// A port that was free a moment ago (bound to port 0 and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw TestSetupError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
