import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Agent
import TestCommands

@Suite("GET /host/info")
struct HostInfoRouteTests {
    @Test("503 unless host management is enabled")
    func disabled() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            for path in ["/host/info", "/v2/host/info"] {
                let reply = try agent.request("GET", path, key: key)
                #expect(reply.status == 503)
                #expect((try reply.json() as? [String: String])?["message"] == "Host management capability disabled")
            }
        }
    }

    @Test("the original's JSON shape, equal to what deckhand host-info prints for this machine")
    func enabled() async throws {
        try await TestAgent.with(hostManagement: true, hostRoot: "/") { agent async throws in
            let reply = try agent.request("GET", "/v2/host/info", key: SigningKey())
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "application/json")
            let body = try #require(try reply.json() as? [String: Any])
            // The original's keys are all there; Deckhand's additions are the documented
            // ones (optional ones left out when unknown); nothing else.
            let sections: Set<String> = [
                "PCIDevices", "PhysicalDisks", "GPUs", "USBDevices", "NetworkInterfaces", "CPU", "Filesystems",
            ]
            // `Machine` only where DMI is readable; never `Warnings` outside umockdev.
            #expect(Set(body.keys).subtracting(["Machine"]) == sections)
            let pci = try #require(body["PCIDevices"] as? [[String: Any]])
            let disks = try #require(body["PhysicalDisks"] as? [[String: Any]])
            let pciKeys: Set<String> = [
                "Vendor", "Name", "Address", "Class", "ClassID", "VendorID", "DeviceID", "SubsystemVendor",
                "SubsystemName", "SubsystemVendorID", "SubsystemDeviceID", "Revision", "Driver",
            ]
            let diskKeys: Set<String> = [
                "Vendor", "Size", "Name", "Model", "Serial", "WWN", "Rotational", "Removable", "Transport",
                "PartitionTable", "PartitionTableUUID", "Filesystem", "Partitions",
            ]
            for device in pci {
                #expect(Set(device.keys).isSuperset(of: ["Vendor", "Name", "Address", "Class", "ClassID", "VendorID", "DeviceID"]))
                #expect(Set(device.keys).isSubset(of: pciKeys), "\(device.keys.sorted())")
            }
            for disk in disks {
                #expect(Set(disk.keys).isSuperset(of: ["Vendor", "Size", "Name", "Partitions"]))
                #expect(Set(disk.keys).isSubset(of: diskKeys), "\(disk.keys.sorted())")
            }
            #expect(!pci.isEmpty)
            for device in pci {
                #expect(device["Vendor"] is String)
                #expect(device["Name"] is String)
                #expect(device["Name"] as? String != "unknown")
            }
            for disk in disks {
                #expect(disk["Vendor"] is String)
                #expect(disk["Size"] is Int)
            }
            let cli = try Command.run(try BuiltProducts.deckhand, ["host-info", "--host-root", "/"])
            #expect(cli.status == 0)
            let printed = try #require(try JSONSerialization.jsonObject(with: cli.stdout) as? [String: Any])
            // Filesystem use moves between the two looks on a busy machine, and other
            // engines add and remove veths and container mounts; the rest may not change.
            #expect(NSDictionary(dictionary: Self.steady(printed, body)).isEqual(to: Self.steady(body, printed)))
        }
    }
    /// `body` without the filesystems' used and available bytes, which other processes
    /// change between two looks, and with only the filesystems and interfaces that
    /// `other` has too.
    static func steady(_ body: [String: Any], _ other: [String: Any]) -> [String: Any] {
        func items(_ answer: [String: Any], _ section: String) -> [[String: Any]] { answer[section] as? [[String: Any]] ?? [] }
        let mounts = Set(items(other, "Filesystems").compactMap { $0["MountPoint"] as? String })
        let interfaces = Set(items(other, "NetworkInterfaces").compactMap { $0["Name"] as? String })
        var body = body
        body["Filesystems"] = items(body, "Filesystems").filter { mounts.contains($0["MountPoint"] as? String ?? "") }
            .map { $0.filter { $0.key != "Used" && $0.key != "Available" } }
        body["NetworkInterfaces"] = items(body, "NetworkInterfaces").filter { interfaces.contains($0["Name"] as? String ?? "") }
        return body
    }

    /// An agent under umockdev on the `server` fixture (NVMe, SATA, a USB stick, two
    /// NICs, a GPU), named `alpha`, with the fixtures' pinned host root.
    static func serverAgent() throws -> AgentProcess {
        let hardware = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/hardware")
        let trees = try String(contentsOf: hardware.appendingPathComponent("server.fixture"), encoding: .utf8).split(separator: "\n")
        return try AgentProcess(
            environment: [
                "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": hardware.appendingPathComponent("host-root").path,
                "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_NODE_NAME": "alpha",
            ],
            launcher: ["umockdev-run"] + trees.flatMap { ["-d", hardware.appendingPathComponent("\($0).umockdev").path] } + ["--"])
    }

    /// `/v2/host/info?filters=` with `filters` URL-encoded, signed by `key` (the agent
    /// trusts the first key it sees).
    static func filtered(_ agent: AgentProcess, _ filters: String, key: SigningKey) throws -> HTTPReply {
        let query = filters.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return try Curl.request("GET", agent.baseURL + "/v2/host/info?filters=" + query, headers: key.headers())
    }

    @Test("filters narrow the answer on the node: class, vendor, driver, transport, min-size, node")
    func filtersNarrowTheAnswer() throws {
        let agent = try Self.serverAgent()
        defer { agent.stop() }
        let key = SigningKey()
        func body(_ filters: String) throws -> [String: Any] {
            let reply = try Self.filtered(agent, filters, key: key)
            #expect(reply.status == 200, "\(filters): \(reply.text)")
            return try #require(try reply.json() as? [String: Any], "\(filters)")
        }
        func names(_ body: [String: Any], _ section: String, _ field: String = "Name") -> [String] {
            ((body[section] as? [[String: Any]]) ?? []).compactMap { $0[field] as? String }
        }
        let nvmeOverHalfATerabyte = try body(#"{"transport":["nvme"],"min-size":["500GB"]}"#)
        #expect(names(nvmeOverHalfATerabyte, "PhysicalDisks") == ["nvme0n1"])
        #expect(names(nvmeOverHalfATerabyte, "PCIDevices").isEmpty && names(nvmeOverHalfATerabyte, "NetworkInterfaces").isEmpty)
        #expect(nvmeOverHalfATerabyte["CPU"] != nil)
        let gpu = try body(#"{"class":["Display controller","VGA compatible controller"]}"#)
        #expect(names(gpu, "GPUs", "Address") == ["0000:01:00.0"] && names(gpu, "PCIDevices", "Address") == ["0000:01:00.0"])
        #expect(names(try body(#"{"driver":["i40e"]}"#), "NetworkInterfaces") == ["enp2s0f0"])
        #expect(names(try body(#"{"vendor":["SanDisk"]}"#), "USBDevices") == ["Ultra"])
        #expect(names(try body(#"{"node":["alpha"]}"#), "PhysicalDisks") == ["nvme0n1", "sda", "sdb"])
        let elsewhere = try body(#"{"node":["beta"]}"#)
        #expect(names(elsewhere, "PhysicalDisks").isEmpty && names(elsewhere, "PCIDevices").isEmpty && elsewhere["CPU"] == nil)
        // Without filters, or with an empty object, the whole answer.
        #expect(NSDictionary(dictionary: try body("{}")).isEqual(to: try body(#"{"node":["ALPHA"]}"#)))
    }

    @Test("bad filters are a 400 JSON error that names the problem, and the agent goes on")
    func badFiltersAreRefused() throws {
        let agent = try Self.serverAgent()
        defer { agent.stop() }
        let key = SigningKey()
        let cases: [(String, String)] = [
            (#"{"colour":["red"]}"#, "'colour'"),
            (#"{"vendor":"Samsung"}"#, "malformed filters"),
            ("{not json", "malformed filters"),
            (#"{"transport":["floppy"]}"#, "'transport=floppy'"),
            (#"{"min-size":["huge"]}"#, "'min-size=huge'"),
        ]
        for (filters, named) in cases {
            let reply = try Self.filtered(agent, filters, key: key)
            #expect(reply.status == 400, "\(filters): \(reply.text)")
            #expect(reply.headers["content-type"] == "application/json")
            let message = (try? reply.json() as? [String: String])?["message"] ?? ""
            #expect(message.contains(named), "\(filters): \(message)")
        }
        let escape = try Curl.request("GET", agent.baseURL + "/v2/host/info?filters=%zz", headers: key.headers())
        #expect(escape.status == 400)
        #expect(try Self.filtered(agent, "{}", key: key).status == 200)
    }

    /// The agent's answer is cached for 5 s (HostInfoCache's time to live), but a udev
    /// event makes it collect again at once. The event comes from a umockdev testbed
    /// (fixtures/hardware/testbed-with-uevents.py) in which the agent runs, never from
    /// the machine's own disks: the fixture disk grows, and says so with "change".
    @Test("a udev change event on a disk refreshes the cached answer before its time to live")
    func udevChangeEventRefreshes() throws {
        let grown = Self.grownSectors
        let agent = try Self.agentWithGrowingDisk()
        defer { agent.stop() }
        let key = SigningKey()
        func diskSize() throws -> UInt64? {
            let reply = try Curl.request("GET", agent.baseURL + "/v2/host/info", headers: key.headers())
            #expect(reply.status == 200, "\(reply.text)")
            let disks = try #require(try reply.json() as? [String: Any])["PhysicalDisks"] as? [[String: Any]]
            return (disks?.first { $0["Name"] as? String == "sda" }?["Size"] as? NSNumber)?.uint64Value
        }
        #expect(try diskSize() == 4_000_787_030_016)
        let cached = Date()
        #expect(kill(agent.pid, SIGUSR1) == 0)
        var size = try diskSize()
        while size != grown * 512 && Date() < cached.addingTimeInterval(4) {
            usleep(100_000)
            size = try diskSize()
        }
        #expect(size == grown * 512, "still \(size.map(String.init) ?? "none") \(Date().timeIntervalSince(cached))s after the first answer")
    }

    /// The entity tag is checked against `sha256sum` of the body as it came (not
    /// against the agent's own hashing), and its staleness against a real udev change
    /// (the testbed's fixture disk grows, as in `udevChangeEventRefreshes`).
    @Test("answers carry an ETag of their bytes; If-None-Match gets a 304 until the inventory changes")
    func conditionalAnswers() throws {
        let agent = try Self.agentWithGrowingDisk()
        defer { agent.stop() }
        let key = SigningKey()
        func ask(_ conditions: String? = nil, filters: String? = nil) throws -> HTTPReply {
            let query = filters.map { "?filters=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? ""
            return try Curl.request("GET", agent.baseURL + "/v2/host/info" + query, headers: key.headers().merging(conditions.map { ["If-None-Match": $0] } ?? [:]) { $1 })
        }
        func sha256sum(_ body: Data) throws -> String {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("host-info-\(UUID().uuidString)")
            try body.write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            return String(try Command.run("sha256sum", [file.path]).output.prefix(64))
        }

        let first = try ask()
        #expect(first.status == 200, "\(first.text)")
        let tag = try #require(first.headers["etag"])
        #expect(tag == "\"" + String(try sha256sum(first.body).prefix(32)) + "\"")
        // The same bytes again, the same tag.
        let again = try ask()
        #expect(again.body == first.body)
        #expect(again.headers["etag"] == tag)
        for conditions in [tag, "W/" + tag, "\"other\", " + tag, "*"] {
            let unchanged = try ask(conditions)
            #expect(unchanged.status == 304, "If-None-Match: \(conditions)")
            #expect(unchanged.body.isEmpty)
            #expect(unchanged.headers["content-length"] == nil)
            #expect(unchanged.headers["etag"] == tag)
        }
        let otherTag = try ask("\"0123\"")
        #expect(otherTag.status == 200)
        #expect(otherTag.body == first.body)
        // Another filter is another answer: its own bytes, its own tag.
        let filtered = try ask(tag, filters: #"{"transport":["sata"]}"#)
        #expect(filtered.status == 200)
        #expect(filtered.body != first.body)
        #expect(filtered.headers["etag"] == "\"" + String(try sha256sum(filtered.body).prefix(32)) + "\"")

        // The disk grows: the old tag no longer matches, and the new answer says so.
        #expect(kill(agent.pid, SIGUSR1) == 0)
        var changed = try ask(tag)
        let deadline = Date().addingTimeInterval(4)
        while changed.status == 304, Date() < deadline {
            usleep(100_000)
            changed = try ask(tag)
        }
        #expect(changed.status == 200)
        let disks = (try changed.json() as? [String: Any])?["PhysicalDisks"] as? [[String: Any]]
        #expect((disks?.first { $0["Name"] as? String == "sda" }?["Size"] as? NSNumber)?.uint64Value == Self.grownSectors * 512)
        let newTag = try #require(changed.headers["etag"])
        #expect(newTag != tag)
        #expect(newTag == "\"" + String(try sha256sum(changed.body).prefix(32)) + "\"")
        #expect(try ask(newTag).status == 304)
    }

    /// The member side of `MemberWatches`: a conditional request with `Prefer: wait=N`
    /// (RFC 7240) is held until the answer changes or N seconds pass. Timed by the
    /// clock around curl, and changed by a real udev event in the testbed.
    @Test("a long poll (If-None-Match with Prefer: wait) is held until the inventory changes or the wait ends")
    func longPolls() throws {
        let agent = try Self.agentWithGrowingDisk()
        defer { agent.stop() }
        let (url, signed) = (agent.baseURL + "/v2/host/info", SigningKey().headers())
        @Sendable func ask(_ headers: [String: String]) throws -> (reply: HTTPReply, seconds: TimeInterval) {
            let started = Date()
            let reply = try Curl.request("GET", url, headers: signed.merging(headers) { $1 })
            return (reply, Date().timeIntervalSince(started))
        }
        let tag = try #require(try ask([:]).reply.headers["etag"])

        // Unchanged: the 304 comes when the wait is over, saying that it was held.
        let held = try ask(["If-None-Match": tag, "Prefer": "wait=2"])
        #expect(held.reply.status == 304)
        #expect(held.seconds >= 1.9 && held.seconds < 4, "held \(held.seconds)s")
        #expect(held.reply.headers["preference-applied"] == "wait=2")
        #expect(held.reply.headers["etag"] == tag)
        // A tag that is not the answer's: the answer at once.
        let other = try ask(["If-None-Match": "\"0123\"", "Prefer": "wait=2"])
        #expect(other.reply.status == 200)
        #expect(other.seconds < 1.5, "took \(other.seconds)s")
        // No wait that is a number of seconds, or no condition: nothing is held.
        for prefer in ["wait=abc", "wait=0", "wait=-1", "wait=", "respond-async", "wait 2"] {
            let plain = try ask(["If-None-Match": tag, "Prefer": prefer])
            #expect(plain.reply.status == 304, "Prefer: \(prefer)")
            #expect(plain.seconds < 1.5, "Prefer: \(prefer) held \(plain.seconds)s")
            #expect(plain.reply.headers["preference-applied"] == nil)
        }
        #expect(try ask(["Prefer": "wait=2"]).seconds < 1.5)

        // The disk grows while two polls are held (one asking for more seconds than any
        // number holds: it is capped, not an error): both are answered then, with the
        // new inventory, long before their waits end.
        let group = DispatchGroup()
        let replies = NIOLockedValueBox<[(reply: HTTPReply, seconds: TimeInterval)]>([])
        for wait in ["10", "99999999999999999999999"] {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                if let reply = try? ask(["If-None-Match": tag, "Prefer": "wait=" + wait]) { replies.withLockedValue { $0.append(reply) } }
            }
        }
        Thread.sleep(forTimeInterval: 1)
        #expect(kill(agent.pid, SIGUSR1) == 0)
        #expect(group.wait(timeout: .now() + 20) == .success)
        let woken = replies.withLockedValue { $0 }
        #expect(woken.count == 2)
        for answer in woken {
            #expect(answer.reply.status == 200)
            #expect(answer.seconds < 6, "answered after \(answer.seconds)s")
            #expect(answer.reply.headers["etag"] != tag)
            let disks = (try answer.reply.json() as? [String: Any])?["PhysicalDisks"] as? [[String: Any]]
            #expect((disks?.first { $0["Name"] as? String == "sda" }?["Size"] as? NSNumber)?.uint64Value == Self.grownSectors * 512)
        }
    }

    /// Twice the sectors of the fixture's 4 TB disk, which it grows to on SIGUSR1.
    static let grownSectors: UInt64 = 2 * 7_814_037_168

    /// An agent inside a umockdev testbed of the SATA disk fixture
    /// (fixtures/hardware/testbed-with-uevents.py), never reading the machine's own
    /// disks: on SIGUSR1 the disk grows to `grownSectors` and says so with "change".
    static func agentWithGrowingDisk() throws -> AgentProcess {
        let hardware = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/hardware")
        let sda = "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
        return try AgentProcess(
            environment: [
                "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": hardware.appendingPathComponent("host-root").path,
                "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            ],
            launcher: [
                "umockdev-wrapper", "/usr/bin/python3", hardware.appendingPathComponent("testbed-with-uevents.py").path,
                hardware.appendingPathComponent("sata-hdd.umockdev").path, sda, "size", String(grownSectors), "--",
            ])
    }
}

