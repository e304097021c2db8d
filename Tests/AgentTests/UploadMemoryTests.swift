import Foundation
import Testing

/// The original agent holds a whole upload in memory (3.9 GB peak for 1 GiB). Deckhand
/// streams it: the agent's peak memory must not grow with the file.
@Suite("Upload memory, measured on the real binary")
struct UploadMemoryTests {
    @Test("a 256 MiB upload raises the agent's peak RSS by far less than its size")
    func uploadDoesNotBuffer() throws {
        let volume = try TestVolume.create(populatedBy: "true")
        defer { volume.remove() }
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "DECKHAND_VOLUMES_ROOT": try TestVolume.volumesRoot,
        ])
        defer { agent.stop() }
        let key = SigningKey()
        // Associate the key and warm the TLS and HTTP paths before the baseline.
        #expect(try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume.name)&path=/", headers: key.headers()).status == 200)
        let before = try agent.memory()

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        let made = try Command.run("dd", ["if=/dev/urandom", "of=\(file.path)", "bs=1M", "count=256", "status=none"])
        #expect(made.status == 0)
        let reply = try Curl.request("POST", agent.baseURL + "/browse/put?volumeID=\(volume.name)", headers: key.headers(),
                                     extra: ["-F", "file=@\(file.path)", "-F", "Path=/", "--max-time", "120"])
        #expect(reply.status == 204)
        let after = try agent.memory()
        let growthMiB = Double(after.peak - before.peak) / 1024
        #expect(growthMiB < 32, "peak RSS grew by \(growthMiB) MiB")
        let stored = try FileManager.default.attributesOfItem(atPath: try volume.dataPath + "/" + file.lastPathComponent)[.size] as? Int
        #expect(stored == 256 << 20)
    }
}
