import Foundation
import Hardware
import TestCommands

/// Runs external commands and finds the package's fixtures and the built `deckhand`.
enum TestSupport {
    /// `fixtures/hardware` at the package root.
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/hardware")

    /// The host root every fixture run is given: it holds only the pinned
    /// `usr/share/misc/pci.ids` (fixtures/hardware/trim-pci-ids.py), so that names do not
    /// change with the machine's pciutils, and a `/host` on the machine is never read.
    /// Its lack of `sys` leaves sysfs to umockdev's fake `/sys`.
    static let fixtureHostRoot = fixtures.appendingPathComponent("host-root")
    static let pinnedPCIIDs = fixtureHostRoot.appendingPathComponent("usr/share/misc/pci.ids").path

    /// `deckhand host-info` (plus `arguments`) under umockdev on the fixture tree `name`,
    /// with the pinned host root unless `arguments` give another.
    static func hostInfo(fixture name: String, _ arguments: [String] = []) throws -> String {
        let root = arguments.contains("--host-root") ? [] : ["--host-root", fixtureHostRoot.path]
        return try underFixture(name, [deckhand, "host-info"] + root + arguments)
    }

    /// `command` run under umockdev on the fixture tree `name`; it must succeed.
    static func underFixture(_ name: String, _ command: [String]) throws -> String {
        try output(umockdevRun(name) + command)
    }

    /// `umockdev-run -d ... --` for the fixture `name`: `NAME.umockdev`, or a machine
    /// put together from several (`NAME.fixture`: one tree name a line).
    static func umockdevRun(_ name: String) -> [String] {
        let composite = fixtures.appendingPathComponent("\(name).fixture")
        let trees = (try? String(contentsOf: composite, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? [name]
        return ["umockdev-run"] + trees.flatMap { ["-d", fixtures.appendingPathComponent("\($0).umockdev").path] } + ["--"]
    }

    /// Every fixture machine: each `.umockdev` tree and each `.fixture` composite.
    static let fixtureNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []
        return names.compactMap { name -> String? in
            for suffix in [".umockdev", ".fixture"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
            return nil
        }.sorted()
    }()

    /// `lspci` (with `arguments`) under the fixture tree, by libpci's sysfs access only
    /// (without it, a tree without PCI makes lspci read the machine's /proc/bus/pci);
    /// nil when the tree has no PCI bus at all.
    static func lspci(fixture name: String, _ arguments: [String]) throws -> [String]? {
        let command = umockdevRun(name) + ["lspci", "-A", "linux-sysfs"] + arguments
        let result = try run(command)
        if result.status != 0 && result.stderr.contains("Cannot open /sys/bus/pci/devices") { return nil }
        guard result.status == 0 else { throw CommandFailed(arguments: command, status: result.status, stderr: result.stderr) }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// `lsusb`'s lines (after `prefix`, e.g. umockdev-run); it exits 1, silently, when there is no USB bus.
    static func lsusb(_ prefix: [String]) throws -> [String] {
        let result = try run(prefix + ["lsusb"])
        guard result.status == 0 || (result.status == 1 && result.stdout.isEmpty) else {
            throw CommandFailed(arguments: prefix + ["lsusb"], status: result.status, stderr: result.stderr)
        }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// The `deckhand` executable SwiftPM built beside this test bundle.
    static var deckhand: String {
        get throws { try BuiltProducts.deckhand }
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `arguments` (the program looked up on PATH, with the sbin folders added for
    /// udevadm and friends) through the suites' one runner, and returns its status and output.
    ///
    /// Under `umockdev-run`, the command's own exit status is what counts: umockdev-run
    /// 0.17 was seen (in CI, and in this machine's kernel log) to die of SIGSEGV in one of
    /// its threads on its way out, after its command had finished and printed everything.
    /// So the command runs in a shell that writes its status to a file, and when
    /// umockdev-run dies of a signal, that status (and the output, already whole) is the
    /// result. A command that itself dies of a signal still reports it (128 + signal).
    static func run(_ arguments: [String]) throws -> Output {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        guard arguments.first == "umockdev-run", let separator = arguments.firstIndex(of: "--") else {
            let result = try Command.run("/usr/bin/env", arguments, environment: ["PATH": path], timeout: 300)
            return Output(status: result.status, stdout: result.output, stderr: result.errorOutput)
        }
        let statusFile = FileManager.default.temporaryDirectory.appendingPathComponent("umockdev-status-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: statusFile) }
        let recorded = Array(arguments[...separator]) + ["/bin/sh", "-c", #""$@"; s=$?; echo $s > "$0"; exit $s"#, statusFile] + arguments[(separator + 1)...]
        let result = try Command.run("/usr/bin/env", recorded, environment: ["PATH": path], timeout: 300)
        if result.status > 128,
           let text = try? String(contentsOfFile: statusFile, encoding: .utf8),
           let own = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            if own != result.status { FileHandle.standardError.write(Data("umockdev-run died with status \(result.status) after its command exited \(own): \(arguments.joined(separator: " "))\n".utf8)) }
            return Output(status: own, stdout: result.output, stderr: result.errorOutput)
        }
        return Output(status: result.status, stdout: result.output, stderr: result.errorOutput)
    }

    /// Runs a command that must succeed, returning its standard output.
    static func output(_ arguments: [String]) throws -> String {
        let result = try run(arguments)
        guard result.status == 0 else {
            throw CommandFailed(arguments: arguments, status: result.status, stderr: result.stderr)
        }
        return result.stdout
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var arguments: [String]
        var status: Int32
        var stderr: String
        var description: String { "\(arguments.joined(separator: " ")) exited \(status): \(stderr)" }
    }

    /// `lspci -mm` lines split into their fields (quoted strings and bare options).
    static func machineFields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" && quoted {
                escaped = true
            } else if character == "\"" {
                if quoted { fields.append(current); current = "" }
                quoted.toggle()
            } else if character == " " && !quoted {
                if !current.isEmpty { fields.append(current); current = "" }
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("deckhand-hw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
