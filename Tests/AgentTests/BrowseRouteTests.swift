import Foundation
import Testing
@testable import Agent
import TestCommands

/// The file browser over real volumes of the test engine, populated with hostile
/// entries by a real container, and over a real host tree in a temporary folder.
@Suite("The /browse routes")
struct BrowseRouteTests {
    /// What a container can plant in its volume to reach outside it.
    static let hostileScript = """
        echo hello > /data/a.txt
        busybox mkdir -p /data/sub/deeper
        echo nested > /data/sub/deeper/n.txt
        busybox ln -s /etc/hosts /data/hosts
        busybox ln -s /etc/passwd /data/passwd
        busybox ln -s / /data/root
        busybox ln -s ../../../../../../etc/hosts /data/up
        busybox ln -s /proc/self/environ /data/environ
        busybox ln -s loop2 /data/loop1
        busybox ln -s loop1 /data/loop2
        busybox mkfifo /data/fifo
        """

    static func withVolume(_ body: (TestAgent, SigningKey, TestVolume) async throws -> Void) async throws {
        let volume = try hostileVolume()
        defer { volume.remove() }
        try await TestAgent.with { agent async throws in
            try await body(agent, SigningKey(), volume)
        }
    }

    /// A volume planted by `hostileScript`, plus a bound unix socket.
    static func hostileVolume() throws -> TestVolume {
        let volume = try TestVolume.create(populatedBy: hostileScript)
        // busybox cannot bind a unix socket; a bound one is made from the host side.
        let socketPath = try volume.dataPath + "/sock"
        let bound = try Command.run("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socketPath])
        guard bound.status == 0 else {
            volume.remove()
            throw TestSetupError("cannot make a socket: \(bound.errorOutput)")
        }
        return volume
    }

    @Test("ls lists a volume with the original's fields and says what links are")
    func list() async throws {
        try await Self.withVolume { agent, key, volume in
            for path in ["/browse/ls?volumeID=\(volume.name)&path=/", "/v2/browse/ls?volumeID=\(volume.name)&path=%2F", "/v1/browse/\(volume.name)/ls?path=/"] {
                let reply = try agent.request("GET", path, key: key)
                #expect(reply.status == 200, "\(path): \(reply.text)")
                let entries = try #require(try reply.json() as? [[String: Any]])
                let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0["Name"] as! String, $0) })
                #expect(Set(byName.keys) == ["a.txt", "sub", "hosts", "passwd", "root", "up", "environ", "loop1", "loop2", "fifo", "sock"])
                #expect(byName["a.txt"]?["Size"] as? Int == 6)
                #expect(byName["a.txt"]?["Dir"] as? Bool == false)
                #expect(byName["sub"]?["Dir"] as? Bool == true)
                #expect((byName["a.txt"]?["ModTime"] as? Int ?? 0) > 1_600_000_000)
                #expect(byName["hosts"]?["Kind"] as? String == "symlink")
                #expect(byName["hosts"]?["SymlinkTarget"] as? String == "/etc/hosts")
                #expect(byName["fifo"]?["Kind"] as? String == "fifo")
                #expect(byName["sock"]?["Kind"] as? String == "socket")
            }
        }
    }

    @Test("a folder a container filled with more than 100,000 files is a 422 naming it, not the agent's memory; 100,000 are listed")
    func hugeFolder() async throws {
        let volume = try TestVolume.create(populatedBy: "busybox mkdir /data/many")
        defer { volume.remove() }
        let folder = try volume.dataPath + "/many"
        func fill(to count: Int) throws {
            let made = try Command.run("python3", ["-c", "import os, sys\nfor i in range(int(sys.argv[2])): open(os.path.join(sys.argv[1], 'f%06d' % i), 'w').close()", folder, String(count)])
            #expect(made.status == 0, "\(made.errorOutput)")
        }
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            try fill(to: 100_000)
            let listed = try agent.request("GET", "/browse/ls?volumeID=\(volume.name)&path=/many", key: key)
            #expect(listed.status == 200)
            #expect((try listed.json() as? [Any])?.count == 100_000)
            try fill(to: 100_001)
            let refused = try agent.request("GET", "/browse/ls?volumeID=\(volume.name)&path=/many", key: key)
            #expect(refused.status == 422)
            #expect((try refused.json() as? [String: Any])?["message"] as? String == "/many: holds more than 100000 entries, more than a listing gives; open a folder inside it, or remove some")
            // The folder around it is listed as before.
            #expect(try agent.request("GET", "/browse/ls?volumeID=\(volume.name)&path=/", key: key).status == 200)
        }
    }

    /// A container can fill its volume with links whose targets are 4 KiB of control
    /// bytes, six bytes each in JSON. Before, 20,000 of them made a listing of about
    /// half a gigabyte, held three times over: the agent grew by gigabytes.
    @Test("a folder of links whose targets are kilobytes of control bytes is a 422, not gigabytes of JSON; a smaller one is listed")
    func folderOfHugeLinkTargets() throws {
        let volume = try TestVolume.create(populatedBy: "busybox mkdir /data/links /data/few")
        defer { volume.remove() }
        let made = try Command.run("python3", ["-c", """
            import os, sys
            for folder, count in ((sys.argv[1] + '/links', 20000), (sys.argv[1] + '/few', 1000)):
                for i in range(count): os.symlink('\\x01' * 4095, os.path.join(folder, 'l%05d' % i))
            """, try volume.dataPath])
        #expect(made.status == 0, "\(made.errorOutput)")
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        let started = try agent.memory().peak
        let refused = try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume.name)&path=/links", headers: key.headers())
        #expect(refused.status == 422, "\(refused.status) \(refused.text.prefix(200))")
        #expect(refused.text.contains("32 MiB"), "\(refused.text.prefix(300))")
        let listed = try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=\(volume.name)&path=/few", headers: key.headers())
        #expect(listed.status == 200)
        let python = try Command.run("python3", ["-c", "import json, sys; e = json.load(sys.stdin); print(len(e), all(x['SymlinkTarget'] == chr(1) * 4095 for x in e))"], input: listed.body)
        #expect(python.output.hasPrefix("1000 True"), "\(python.output) \(python.errorOutput)")
        let grown = try agent.memory().peak - started
        #expect(grown < 256 * 1024, "peak RSS grew by \(grown) KiB")
    }

    @Test("links planted in a volume never reach the agent's or the host's files (the original serves /etc/hosts)")
    func plantedLinksStayInside() async throws {
        // This machine may have no /etc/hosts; /etc/passwd is always there to leak.
        let passwd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        try await Self.withVolume { agent, key, volume in
            for name in ["hosts", "passwd", "up", "root/etc/passwd", "sub/../../../../etc/passwd", "%2E%2E/%2E%2E/%2E%2E/etc/passwd", "//etc/passwd"] {
                let reply = try agent.request("GET", "/browse/get?volumeID=\(volume.name)&path=\(name)", key: key)
                #expect(reply.status == 404, "\(name) gave \(reply.status)")
                #expect(!reply.text.contains(passwd.prefix(20)))
            }
            // /proc magic links are refused outright, loops are reported, FIFOs never opened.
            for (name, status) in [("environ", 404), ("loop1", 400), ("fifo", 400), ("sock", 400), ("sub", 400)] {
                let reply = try agent.request("GET", "/browse/get?volumeID=\(volume.name)&path=\(name)", key: key)
                #expect(reply.status == status, "\(name) gave \(reply.status): \(reply.text)")
                #expect((try reply.json() as? [String: String])?["message"] != nil)
            }
            // Listing through a link to / lists the volume's own root.
            let listed = try agent.request("GET", "/browse/ls?volumeID=\(volume.name)&path=/root", key: key)
            let names = (try listed.json() as? [[String: Any]])?.compactMap { $0["Name"] as? String }
            #expect(names?.contains("a.txt") == true)
            // A NUL byte is a bad request, not a truncated path.
            #expect(try agent.request("GET", "/browse/get?volumeID=\(volume.name)&path=a.txt%00.png", key: key).status == 400)
        }
    }

    @Test("get serves a file like http.ServeContent: length, dates, ranges, conditional")
    func download() async throws {
        try await Self.withVolume { agent, key, volume in
            let base = "/browse/get?volumeID=\(volume.name)&path=a.txt"
            let whole = try agent.request("GET", base, key: key)
            #expect(whole.status == 200)
            #expect(whole.text == "hello\n")
            #expect(whole.headers["content-length"] == "6")
            #expect(whole.headers["content-type"] == "text/plain; charset=utf-8")
            #expect(whole.headers["content-disposition"] == "attachment; filename=\"a.txt\"")
            #expect(whole.headers["accept-ranges"] == "bytes")
            let lastModified = try #require(whole.headers["last-modified"])
            #expect(lastModified.hasSuffix(" GMT"))

            let part = try agent.request("GET", base, key: key, headers: ["Range": "bytes=1-3"])
            #expect(part.status == 206)
            #expect(part.text == "ell")
            #expect(part.headers["content-range"] == "bytes 1-3/6")
            let suffix = try agent.request("GET", base, key: key, headers: ["Range": "bytes=-2"])
            #expect(suffix.text == "o\n")
            let beyond = try agent.request("GET", base, key: key, headers: ["Range": "bytes=100-"])
            #expect(beyond.status == 416)
            #expect(beyond.headers["content-range"] == "bytes */6")

            let notModified = try agent.request("GET", base, key: key, headers: ["If-Modified-Since": lastModified])
            #expect(notModified.status == 304)
            #expect(notModified.body.isEmpty)
            let modified = try agent.request("GET", base, key: key, headers: ["If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"])
            #expect(modified.status == 200)
        }
    }

    @Test("delete removes a link itself, never what it points to")
    func delete() async throws {
        try await Self.withVolume { agent, key, volume in
            let data = try volume.dataPath
            #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume.name)&path=passwd", key: key).status == 204)
            #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume.name)&path=root", key: key).status == 204)
            #expect(FileManager.default.fileExists(atPath: "/etc/passwd"))
            #expect(FileManager.default.fileExists(atPath: data + "/a.txt"))
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: data + "/passwd")) == nil)
            #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume.name)&path=sub", key: key).status == 204)
            #expect(!FileManager.default.fileExists(atPath: data + "/sub"))
            #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume.name)&path=missing", key: key).status == 404)
            #expect(try agent.request("DELETE", "/browse/delete?volumeID=\(volume.name)&path=/", key: key).status == 403)
        }
    }

    /// A container builds a 16,000-level chain in seconds, without ever naming a path
    /// longer than PATH_MAX: a 1,000-level chain at a time, the chain so far moved under it.
    static let deepTreeScript = """
        cd /data || exit 1
        P=d; i=1; while [ $i -lt 1000 ]; do P=$P/d; i=$((i+1)); done
        mkdir -p deep/$P && echo bottom > deep/$P/leaf || exit 1
        i=0; while [ $i -lt 15 ]; do mkdir -p next/$P && mv deep next/$P/d && mv next deep || exit 1; i=$((i+1)); done
        """

    @Test("delete removes a 16,000-level tree without the agent process dying (it crashed on SIGSEGV)")
    func deleteDeepTree() throws {
        let volume = try TestVolume.create(populatedBy: Self.deepTreeScript)
        defer { volume.remove() }
        let data = try volume.dataPath
        #expect(Self.depth(of: data + "/deep") >= 16_000)
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket,
            "DECKHAND_VOLUMES_ROOT": try TestVolume.volumesRoot,
        ])
        defer { agent.stop() }
        let key = SigningKey()
        // No answer at all (curl fails) when the agent dies of it.
        let deleted = try? Curl.request("DELETE", agent.baseURL + "/browse/delete?volumeID=\(volume.name)&path=/deep",
                                        headers: key.headers(), extra: ["--max-time", "120"])
        #expect(deleted?.status == 204, "\(deleted?.text ?? "no answer")")
        #expect(agent.process.isRunning, "the agent process died")
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
        #expect(!FileManager.default.fileExists(atPath: data + "/deep"))
    }

    /// How many `d` directories are stacked under `top`, counted one openat at a time
    /// (the chain's path is far longer than PATH_MAX).
    static func depth(of top: String) -> Int {
        var current = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var depth = 0
        while current >= 0 {
            let child = openat(current, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(current)
            current = child
            if child >= 0 { depth += 1 }
        }
        return depth
    }

    @Test("rename moves within the root, refuses to overwrite, and cannot leave")
    func rename() async throws {
        try await Self.withVolume { agent, key, volume in
            let data = try volume.dataPath
            func rename(_ from: String, _ to: String) throws -> HTTPReply {
                try agent.request("PUT", "/browse/rename?volumeID=\(volume.name)", key: key,
                                  headers: ["Content-Type": "application/json"],
                                  body: try JSONSerialization.data(withJSONObject: ["CurrentFilePath": from, "NewFilePath": to]))
            }
            #expect(try rename("a.txt", "b.txt").status == 204)
            #expect(try String(contentsOfFile: data + "/b.txt", encoding: .utf8) == "hello\n")
            #expect(try rename("b.txt", "sub/deeper/n.txt").status == 409)
            #expect(try String(contentsOfFile: data + "/sub/deeper/n.txt", encoding: .utf8) == "nested\n")
            // ".." stops at the volume's root, like a chroot.
            #expect(try rename("b.txt", "../../../escaped.txt").status == 204)
            #expect(FileManager.default.fileExists(atPath: data + "/escaped.txt"))
            #expect(!FileManager.default.fileExists(atPath: data + "/../escaped.txt"))
            #expect(try rename("missing", "x").status == 404)
            let bad = try agent.request("PUT", "/browse/rename?volumeID=\(volume.name)", key: key, body: Data("{nope".utf8))
            #expect(bad.status == 400)
            let large = try agent.request("PUT", "/browse/rename?volumeID=\(volume.name)", key: key, body: Data(count: 200_000))
            #expect(large.status == 413)
            #expect((try large.json() as? [String: String])?["message"] == "Request body too large")
        }
    }

    @Test("put uploads atomically, creating the folder, with mode 0644")
    func upload() async throws {
        try await Self.withVolume { agent, key, volume in
            let data = try volume.dataPath
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("up-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let payload = Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try payload.write(to: dir.appendingPathComponent("big.bin"))
            try Data().write(to: dir.appendingPathComponent("empty.txt"))

            func put(_ file: String, path: String) throws -> HTTPReply {
                try Curl.request("POST", agent.baseURL + "/browse/put?volumeID=\(volume.name)",
                                 headers: key.headers(), extra: ["-F", "file=@\(dir.appendingPathComponent(file).path)", "-F", "Path=\(path)"])
            }
            #expect(try put("big.bin", path: "/new/folder").status == 204)
            #expect(try Data(contentsOf: URL(fileURLWithPath: data + "/new/folder/big.bin")) == payload)
            let mode = try FileManager.default.attributesOfItem(atPath: data + "/new/folder/big.bin")[.posixPermissions] as? Int
            #expect(mode == 0o644)
            let folderMode = try FileManager.default.attributesOfItem(atPath: data + "/new/folder")[.posixPermissions] as? Int
            #expect(folderMode == 0o755)
            #expect(try put("empty.txt", path: "/").status == 204)
            #expect(try Data(contentsOf: URL(fileURLWithPath: data + "/empty.txt")).isEmpty)
            // Replacing an existing file swaps it whole.
            try Data("replaced".utf8).write(to: dir.appendingPathComponent("a.txt"))
            #expect(try put("a.txt", path: "/").status == 204)
            #expect(try String(contentsOfFile: data + "/a.txt", encoding: .utf8) == "replaced")
            // Through a planted link, the upload lands inside the volume.
            #expect(try put("empty.txt", path: "/root/etc").status == 204)
            #expect(FileManager.default.fileExists(atPath: data + "/etc/empty.txt"))
        }
    }

    /// What the kernel refuses decides: the host root holds a tmpfs with room for 64 KiB
    /// and two more inodes. A megabyte does not fit in a folder made for it, and a third
    /// level of folders does not fit at all: each is a 507, and no folder made for the
    /// upload is left behind.
    @Test("an upload that cannot be put in place leaves none of the folders made for it")
    func failedUploadLeavesNoFolders() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hostroot-\(UUID().uuidString)")
        let small = root.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try #require(mount("tmpfs", small.path, "tmpfs", 0, "size=64k,nr_inodes=3") == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
        defer { _ = umount2(small.path, Int32(MNT_DETACH)) }
        let big = root.appendingPathComponent("big.bin")
        try Data(count: 1 << 20).write(to: big)
        try await TestAgent.with(hostManagement: true, hostRoot: root.path) { agent async throws in
            let key = SigningKey()
            func put(_ file: URL, path: String) throws -> HTTPReply {
                try Curl.request("POST", agent.baseURL + "/browse/put", headers: key.headers(), extra: ["-F", "file=@\(file.path)", "-F", "Path=\(path)"])
            }
            for destination in ["/host/small/new", "/host/small/a/b/c"] {
                let reply = try put(big, path: destination)
                #expect(reply.status == 507, "\(destination): \(reply.status) \(reply.text)")
                #expect(try FileManager.default.contentsOfDirectory(atPath: small.path) == [], "\(destination)")
            }
            // What fits still goes in, into the folders made for it.
            let tiny = root.appendingPathComponent("tiny.txt")
            try Data("fits\n".utf8).write(to: tiny)
            #expect(try put(tiny, path: "/host/small/new").status == 204)
            #expect(try String(contentsOf: small.appendingPathComponent("new/tiny.txt"), encoding: .utf8) == "fits\n")
        }
    }

    /// On the real binary, whose descriptors can be counted: a staged upload is an
    /// O_TMPFILE (no name in any listing), so a leaked one shows only as a descriptor.
    @Test("a broken or refused upload leaves no partial file, the old file intact, and no descriptor open")
    func brokenUpload() throws {
        let volume = try Self.hostileVolume()
        defer { volume.remove() }
        let process = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "DECKHAND_VOLUMES_ROOT": try TestVolume.volumesRoot,
        ])
        defer { process.stop() }
        let key = SigningKey()
        struct Agent {
            let process: AgentProcess
            func request(_ method: String, _ path: String, key: SigningKey, headers: [String: String] = [:], body: Data? = nil) throws -> HTTPReply {
                try Curl.request(method, process.baseURL + path, headers: key.headers().merging(headers) { $1 }, body: body)
            }
        }
        let agent = Agent(process: process)
        do {
            // Associate the key and warm the TLS and HTTP paths before the baseline.
            #expect(try agent.request("GET", "/browse/ls?volumeID=\(volume.name)&path=/", key: key).status == 200)
            let baseline = process.openFileCount()
            let data = try volume.dataPath
            let boundary = "deckhandboundary"
            let head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            var truncated = Data(head.utf8)
            truncated.append(Data(repeating: 0x41, count: 300_000))  // no closing boundary, no Path
            let reply = try agent.request("POST", "/browse/put?volumeID=\(volume.name)", key: key,
                                          headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"], body: truncated)
            #expect(reply.status == 400)
            #expect(try String(contentsOfFile: data + "/a.txt", encoding: .utf8) == "hello\n")

            for (name, status) in [("..", 400), ("a/b", 400), (".", 400)] {
                let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\n\r\nx\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n/\r\n--\(boundary)--\r\n"
                let refused = try agent.request("POST", "/browse/put?volumeID=\(volume.name)", key: key,
                                                headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"], body: Data(body.utf8))
                #expect(refused.status == status, "\(name): \(refused.text)")
            }
            #expect(try agent.request("POST", "/browse/put?volumeID=\(volume.name)", key: key,
                                      headers: ["Content-Type": "application/json"], body: Data("{}".utf8)).status == 400)
            let names = Set(try FileManager.default.contentsOfDirectory(atPath: data))
            #expect(names == ["a.txt", "sub", "hosts", "passwd", "root", "up", "environ", "loop1", "loop2", "fifo", "sock"])
            var open = process.openFileCount()
            for _ in 0..<50 where open != baseline {
                usleep(100_000)
                open = process.openFileCount()
            }
            #expect(open == baseline, "descriptors: \(baseline) before the uploads, \(open) after")
        }
    }

    @Test("volume names are checked and missing volumes are 404")
    func volumeNames() async throws {
        try await TestAgent.with { agent async throws in
            let key = SigningKey()
            #expect(try agent.request("GET", "/browse/ls?volumeID=..&path=/", key: key).status == 400)
            #expect(try agent.request("GET", "/browse/ls?volumeID=a%2Fb&path=/", key: key).status == 400)
            #expect(try agent.request("GET", "/browse/ls?volumeID=dh-no-such-volume&path=/", key: key).status == 404)
            #expect(try agent.request("GET", "/browse/ls?volumeID=x&path=%zz", key: key).status == 400)
        }
    }

    @Test("a target with a fragment, or not a path, is refused (400): Portainer's Go reads a volumeID after '#' that the host browser would never have seen")
    func fragmentsAndOtherTargets() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hostroot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("etc"), withIntermediateDirectories: true)
        let victim = root.appendingPathComponent("etc/victim")
        try Data("host file\n".utf8).write(to: victim)
        defer { try? FileManager.default.removeItem(at: root) }
        try await TestAgent.with(hostManagement: true, hostRoot: root.path) { agent async throws in
            let signature = HostileClientTests.signature(SigningKey())
            // curl drops a fragment before sending; these go out as written. Go's
            // url.ParseRequestURI keeps `#&volumeID=myvol` in RawQuery, so Portainer runs
            // its volume check on myvol; before, the agent read no volumeID and opened the host.
            for (target, status) in [
                ("GET /v2/browse/ls?path=/host/etc#&volumeID=myvol", "400"),
                ("GET /v2/browse/get?path=/host/etc/victim#&volumeID=myvol", "400"),
                ("DELETE /v2/browse/delete?path=/host/etc/victim#&volumeID=myvol", "400"),
                ("GET http://evil.example:1/v2/browse/ls?path=/host/etc", "400"),
                ("GET * ", "400"),
                ("CONNECT evil.example:443", "405"),
            ] {
                let connection = try LimitsTests.RawConnection(port: agent.port)
                try connection.send("\(target) HTTP/1.1\r\nHost: x\r\n\(signature)\r\n")
                let received = connection.wait(atMost: 5) { $0.contains("\r\n\r\n") }
                #expect(received.hasPrefix("HTTP/1.1 \(status)"), "\(target): \(received.prefix(200))")
                #expect(!received.contains("victim"), "\(target): \(received.prefix(300))")
            }
            #expect(FileManager.default.fileExists(atPath: victim.path), "the host file was deleted")
            // A version with more than one digit before its dot is not stripped: to
            // Portainer the request is the engine's, and so it is here.
            let versioned = try agent.request("GET", "/v12.3/browse/ls?path=/host/etc", key: SigningKey())
            #expect(!versioned.text.contains("victim"), "\(versioned.status): \(versioned.text.prefix(300))")
        }
    }

    @Test("the host browser needs CAP_HOST_MANAGEMENT and maps /host onto the host root")
    func hostBrowser() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hostroot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("etc"), withIntermediateDirectories: true)
        try Data("host file\n".utf8).write(to: root.appendingPathComponent("etc/motd"))
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("abs").path, withDestinationPath: "/etc/motd")
        defer { try? FileManager.default.removeItem(at: root) }

        try await TestAgent.with { agent async throws in
            let reply = try agent.request("GET", "/browse/ls?path=/host", key: SigningKey())
            #expect(reply.status == 503)
            #expect((try reply.json() as? [String: String])?["message"] == "Host management capability disabled")
        }
        try await TestAgent.with(hostManagement: true, hostRoot: root.path) { agent async throws in
            let key = SigningKey()
            let listed = try agent.request("GET", "/browse/ls?path=/host/etc", key: key)
            #expect(listed.status == 200)
            #expect((try listed.json() as? [[String: Any]])?.map { $0["Name"] as? String } == ["motd"])
            // An absolute link means what it means to the host: the host root's /etc/motd.
            let viaLink = try agent.request("GET", "/browse/get?path=/host/abs", key: key)
            #expect(viaLink.text == "host file\n")
            #expect(try agent.request("GET", "/browse/get?path=/host/../../etc/passwd", key: key).status == 404)
        }
    }

    /// An engine's volume inspect names where the volume is (`Mountpoint`); a plugin's,
    /// or an engine's that is not one, may name any folder. The stand-in engine (Python,
    /// `HostileEngine`) names a folder outside any volume for `evil`, and a local
    /// volume's shape for `fine`. Before, `evil` listed that folder, and its file was served.
    @Test("a volume whose engine names a folder not of the shape …/<name>/_data is not opened there")
    func mountpointsOfAnotherShape() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mountpoints-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outside = folder.appendingPathComponent("outside")
        let fine = folder.appendingPathComponent("volumes/fine/_data")
        for made in [outside, fine, folder.appendingPathComponent("fallback")] {
            try FileManager.default.createDirectory(at: made, withIntermediateDirectories: true)
        }
        try Data("secret\n".utf8).write(to: outside.appendingPathComponent("secret.txt"))
        try Data("in the volume\n".utf8).write(to: fine.appendingPathComponent("f.txt"))
        let engine = try HostileEngine(answers: [
            "/volumes/evil": #"{"Name":"evil","Mountpoint":"\#(outside.path)"}"#,
            "/volumes/fine": #"{"Name":"fine","Mountpoint":"\#(fine.path)"}"#,
        ])
        defer { engine.stop() }
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": engine.socket, "DECKHAND_VOLUMES_ROOT": folder.appendingPathComponent("fallback").path,
        ])
        defer { agent.stop() }
        let key = SigningKey()
        let listed = try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=fine&path=/", headers: key.headers())
        #expect(listed.status == 200 && listed.text.contains("f.txt"), "\(listed.status) \(listed.text)")
        let refused = try Curl.request("GET", agent.baseURL + "/browse/ls?volumeID=evil&path=/", headers: key.headers())
        #expect(refused.status == 404, "\(refused.status) \(refused.text)")
        let read = try Curl.request("GET", agent.baseURL + "/browse/get?volumeID=evil&path=/secret.txt", headers: key.headers())
        #expect(read.status == 404 && !read.text.contains("secret"), "\(read.status) \(read.text)")
    }
}
