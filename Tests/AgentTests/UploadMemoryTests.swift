import Foundation
import Testing
import TestCommands

/// Large and broken uploads against the real binary: the original agent holds a
/// whole upload in memory (3.9 GB peak for 1 GiB) and writes straight into the
/// destination, so a cut-off upload leaves a truncated file.
@Suite("Large and broken uploads, on the real binary", .serialized)
struct UploadMemoryTests {
    static func startAgent() throws -> AgentProcess {
        try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "DECKHAND_VOLUMES_ROOT": try TestVolume.volumesRoot,
        ])
    }

    @Test("a 2 GiB upload arrives whole while the agent's peak RSS grows by less than 32 MiB")
    func multiGiBUpload() throws {
        let volume = try TestVolume.create(populatedBy: "true")
        defer { volume.remove() }
        let agent = try Self.startAgent()
        defer { agent.stop() }
        let key = SigningKey()
        // Associate the key and warm the TLS and HTTP paths before the baseline.
        #expect(try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume.name)&path=/", headers: key.headers()).status == 200)
        let before = try agent.memory()

        let file = URL(fileURLWithPath: "/var/tmp/deckhand-upload-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        // A sparse 2 GiB file with real bytes at both ends: cheap to make, and a
        // copy that lost or shifted anything shows at the end.
        let made = try Command.run("sh", ["-c", "head -c 1048576 /dev/urandom > \(file.path) && truncate -s 2G \(file.path) && head -c 1048576 /dev/urandom >> \(file.path)"])
        #expect(made.status == 0)
        let reply = try Curl.request("POST", agent.baseURL + "/browse/put?volumeID=\(volume.name)", headers: key.headers(),
                                     extra: ["-F", "file=@\(file.path)", "-F", "Path=/big", "--max-time", "300"])
        #expect(reply.status == 204, "\(reply.text)")
        let after = try agent.memory()
        let growthMiB = Double(after.peak - before.peak) / 1024
        #expect(growthMiB < 32, "peak RSS grew by \(growthMiB) MiB")
        let stored = try volume.dataPath + "/big/" + file.lastPathComponent
        let same = try Command.run("cmp", [file.path, stored], timeout: 120)
        #expect(same.status == 0, "\(same.output)")
    }

    @Test("an upload cut off half way leaves no partial file and the old file intact")
    func cutOffUpload() throws {
        let volume = try TestVolume.create(populatedBy: "echo original > /data/target.bin")
        defer { volume.remove() }
        let agent = try Self.startAgent()
        defer { agent.stop() }
        let key = SigningKey()
        // Associate the key and warm the TLS and HTTP paths before the baseline.
        #expect(try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume.name)&path=/", headers: key.headers()).status == 200)
        let baseline = agent.openFileCount()
        let boundary = "cutoffboundary"
        let head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"target.bin\"\r\n\r\n"
        let body = Data(head.utf8) + Data(repeating: 0x42, count: 8 << 20)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString)")
        try body.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        // The request promises 64 MiB and the client goes away after 8: curl gives up
        // on the short upload (its exit status is not what is tested).
        _ = try Command.run("curl", ["-sk", "--http1.1", "-X", "POST", "--max-time", "3",
                                     "-H", "Content-Type: multipart/form-data; boundary=\(boundary)",
                                     "-H", "Content-Length: \(64 << 20)",
                                     "-H", "X-PortainerAgent-PublicKey: \(key.headers()["X-PortainerAgent-PublicKey"]!)",
                                     "-H", "X-PortainerAgent-Signature: \(key.headers()["X-PortainerAgent-Signature"]!)",
                                     "--data-binary", "@\(file.path)",
                                     agent.baseURL + "/browse/put?volumeID=\(volume.name)"], timeout: 30)
        // The agent notices the connection is gone and drops the staged file: an
        // O_TMPFILE, which no listing shows, so it is its descriptor that must go.
        var open = agent.openFileCount()
        for _ in 0..<50 where open != baseline {
            usleep(100_000)
            open = agent.openFileCount()
        }
        #expect(open == baseline, "descriptors: \(baseline) before the upload, \(open) after")
        let data = try volume.dataPath
        #expect(try FileManager.default.contentsOfDirectory(atPath: data) == ["target.bin"])
        #expect(try String(contentsOfFile: data + "/target.bin", encoding: .utf8) == "original\n")
        // And it keeps serving.
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }
}
