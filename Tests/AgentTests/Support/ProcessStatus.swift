import Foundation
import TestCommands

/// What the kernel says of a running process's identity (`/proc/<pid>/status`): the
/// users and groups it runs as and its capability sets. Containers here share the
/// test's pid namespace view from outside, so an engine's `State.Pid` is readable here.
struct ProcessStatus: CustomStringConvertible {
    /// Real, effective, saved and filesystem uid.
    let uids: [UInt32]
    let gids: [UInt32]
    let groups: Set<UInt32>
    let effectiveCapabilities: UInt64
    let boundingCapabilities: UInt64

    init(pid: Int32) throws {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        func numbers(_ name: String) -> [UInt32] {
            (fields[name] ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
        }
        guard let effective = UInt64(fields["CapEff"] ?? "", radix: 16), let bounding = UInt64(fields["CapBnd"] ?? "", radix: 16) else {
            throw TestSetupError("/proc/\(pid)/status has no capability sets: \(text)")
        }
        uids = numbers("Uid")
        gids = numbers("Gid")
        groups = Set(numbers("Groups"))
        effectiveCapabilities = effective
        boundingCapabilities = bounding
    }

    /// Every uid (real, effective, saved, filesystem) is `uid`.
    func runs(as uid: UInt32) -> Bool { uids.count == 4 && uids.allSatisfy { $0 == uid } }

    var description: String {
        "uid \(uids) gid \(gids) groups \(groups.sorted()) CapEff \(String(effectiveCapabilities, radix: 16)) CapBnd \(String(boundingCapabilities, radix: 16))"
    }

    /// The capability set of these names (`DAC_OVERRIDE`, ...), as /proc shows sets.
    static func mask(_ names: [String]) throws -> UInt64 {
        try names.reduce(UInt64(0)) { mask, name in
            guard let bit = capabilityNumbers[name] else { throw TestSetupError("unknown capability \(name)") }
            return mask | (1 << bit)
        }
    }

    /// linux/capability.h, the ones a file browser could want.
    static let capabilityNumbers: [String: UInt64] = [
        "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
        "KILL": 5, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10, "SYS_ADMIN": 21,
    ]
}

/// The least-privilege lines of a deploy/ stack file (`user:`, `cap_drop:`, `cap_add:`,
/// `read_only:`), read from the file as users deploy it, so that a test runs exactly that.
struct StackPrivileges {
    var user: String?
    var capDrop: [String] = []
    var capAdd: [String] = []
    var readOnly = false

    init(file: String) throws {
        let text = try String(contentsOf: LabSwarm.repositoryRoot.appendingPathComponent("deploy/\(file)"), encoding: .utf8)
        func list(_ value: String) -> [String] {
            value.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") { continue }
            let parts = trimmed.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "user": user = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            case "cap_drop": capDrop = list(parts[1])
            case "cap_add": capAdd = list(parts[1])
            case "read_only": readOnly = parts[1] == "true"
            default: break
            }
        }
    }
}
