import Foundation
import NIOCore
import NIOHTTP1
@testable import Proxy
import Testing
import TestCommands
@testable import Agent

@Suite("Cluster scope of a request head")
struct ClusterRoutingTests {
    static let table: [(HTTPMethod, String, [String: String], ClusterScope)] = [
        (.GET, "/v1.41/containers/json", [:], .aggregate(.array)),
        (.GET, "/containers/json?all=1&filters=%7B%7D", [:], .aggregate(.array)),
        (.GET, "/v1.41/images/json", [:], .aggregate(.array)),
        (.GET, "/networks", [:], .aggregate(.array)),
        (.GET, "/v1.41/volumes", [:], .aggregate(.volumes)),
        (.GET, "/v1.41/volumes/myvol", [:], .local),
        (.POST, "/v1.41/volumes/create", [:], .local),
        (.GET, "/v1.41/containers/abc/json", [:], .local),
        (.GET, "/v1.41/containers/json", ["X-PortainerAgent-Target": "node2"], .node("node2")),
        (.POST, "/v1.41/containers/abc/attach", ["X-PortainerAgent-Target": "node3"], .node("node3")),
        (.GET, "/v1.41/containers/json", ["X-PortainerAgent-Target": ""], .aggregate(.array)),
        (.GET, "/v1.41/services", [:], .manager),
        (.POST, "/v1.41/services/create", [:], .manager),
        (.GET, "/tasks?filters=x", [:], .manager),
        (.GET, "/v1.41/secrets", [:], .manager),
        (.GET, "/v1.41/configs", [:], .manager),
        (.GET, "/v1.41/swarm", [:], .manager),
        (.GET, "/v1.41/info", [:], .manager),
        (.GET, "/v1.41/nodes", [:], .manager),
        (.GET, "/v1.41/info", ["X-PortainerAgent-Target": "node2"], .node("node2")),
        (.GET, "/v1.41/version", ["X-PortainerAgent-ManagerOperation": "1"], .manager),
        (.GET, "/v1.41/version", [:], .local),
        (.GET, "/v1.41/information", [:], .local),
        (.GET, "/browse/ls?path=/", ["X-PortainerAgent-Target": "node2"], .node("node2")),
        (.GET, "/host/info", ["X-PortainerAgent-Target": "node2"], .node("node2")),
        (.GET, "/websocket/exec?id=1", ["X-PortainerAgent-Target": "node2"], .node("node2")),
        (.GET, "/agents", ["X-PortainerAgent-Target": "node2"], .local),
        (.GET, "/ping", ["X-PortainerAgent-Target": "node2"], .local),
        (.GET, "/v2/cluster/member", [:], .local),
    ]

    @Test("the cluster routing table", arguments: table)
    func scope(method: HTTPMethod, uri: String, headers: [String: String], expected: ClusterScope) {
        let route = Router.route(method: method, uri: uri)
        let scope = Router.scope(for: route, method: method, uri: uri, headers: HTTPHeaders(headers.map { ($0.key, $0.value) }))
        #expect(scope == expected)
    }
}

@Suite("Merging engine lists")
struct JSONListMergerTests {
    typealias Part = JSONListMerger.Part

    @Test("items are tagged with their node and otherwise copied byte for byte")
    func arrays() throws {
        let merged = JSONListMerger.mergeArrays([
            Part(nodeName: "n1", body: Array(#"[{"Id":"a","Size":12345678901234567890,"Names":["/x"]} , {}]"#.utf8)),
            Part(nodeName: "n\"2", body: Array("[ ]\n".utf8)),
            Part(nodeName: "n3", body: Array(#"[{"Id":"c","Label":"}]\"{"}]"#.utf8)),
        ]).body
        #expect(String(buffer: merged) ==
            #"[{"Id":"a","Size":12345678901234567890,"Names":["/x"],"Portainer":{"Agent":{"NodeName":"n1"}}},{"Portainer":{"Agent":{"NodeName":"n1"}}},{"Id":"c","Label":"}]\"{","Portainer":{"Agent":{"NodeName":"n3"}}}]"#)
    }

    @Test("a part is read from its buffer's reader index, as a decoder hands it over")
    func bufferSlices() throws {
        var body = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n[{ }, {\"Id\":\"x\"}]trailing")
        body.moveReaderIndex(forwardBy: 19)
        body = body.getSlice(at: body.readerIndex, length: body.readableBytes - 8)!
        let merged = JSONListMerger.mergeArrays([Part(nodeName: "n1", body: body)]).body
        #expect(String(buffer: merged) ==
            #"[{ "Portainer":{"Agent":{"NodeName":"n1"}}},{"Id":"x","Portainer":{"Agent":{"NodeName":"n1"}}}]"#)
    }

    @Test("volumes keep Docker's shape; null lists count as empty")
    func volumes() throws {
        let merged = JSONListMerger.mergeVolumes([
            Part(nodeName: "n1", body: Array(#"{"Volumes":[{"Name":"v1"}],"Warnings":null}"#.utf8)),
            Part(nodeName: "n2", body: Array(#"{"Volumes":null,"Warnings":["careful"]}"#.utf8)),
            Part(nodeName: "n3", body: Array(#"{"Warnings":[],"Volumes":[{"Name":"v3"}]}"#.utf8)),
        ]).body
        #expect(String(buffer: merged) ==
            #"{"Volumes":[{"Name":"v1","Portainer":{"Agent":{"NodeName":"n1"}}},{"Name":"v3","Portainer":{"Agent":{"NodeName":"n3"}}}],"Warnings":["careful"]}"#)
    }

    /// What a broken or hostile member may answer, each checked by Python's `json` first.
    static let malformedLists = [
        "", "{", "[", "[1,", "[1 2]", "{\"a\":1}", "[\"unterminated]", "[}", "[1]]", "[]x",
        // Brackets that balance by count but not by kind, and bare words: a bracket count passed them.
        "[1\"]", "[{\"a\":1]]", "[tru\"e,x]", "[{\"a\":}]", "[01]", "[\"tab\there\"]", "[1,]", "[{\"a\" 1}]",
    ]

    @Test("a malformed list is left out and named, and the other nodes' lists are merged; Python's json agrees it is not a JSON array", arguments: malformedLists)
    func malformed(body: String) throws {
        let python = try Command.run("python3", ["-c", "import json, sys\ntry:\n    sys.exit(0 if isinstance(json.loads(sys.stdin.read()), list) else 4)\nexcept ValueError:\n    sys.exit(3)"], input: Data(body.utf8))
        #expect(python.status != 0, "Python reads \(body.debugDescription) as a JSON array")
        let merged = JSONListMerger.mergeArrays([
            Part(nodeName: "good", body: Array(#"[{"Id":"a"}]"#.utf8)), Part(nodeName: "bad", body: Array(body.utf8)),
            Part(nodeName: "also good", body: Array("[2]".utf8)),
        ])
        #expect(merged.refused == [1])
        let items = try JSONSerialization.jsonObject(with: Data(merged.body.readableBytesView)) as? [Any]
        #expect(items?.count == 2, "\(String(buffer: merged.body))")
        let volumes = JSONListMerger.mergeVolumes([
            Part(nodeName: "good", body: Array(#"{"Volumes":[{"Name":"v"}],"Warnings":null}"#.utf8)),
            Part(nodeName: "bad", body: Array(#"{"Volumes":\#(body),"Warnings":null}"#.utf8)),
        ])
        #expect(volumes.refused == [1], "\(body)")
        #expect((try? JSONSerialization.jsonObject(with: Data(volumes.body.readableBytesView))) != nil, "\(String(buffer: volumes.body))")
    }

    @Test("a merged list carries only the engine's own fields, whoever's head it is made from, and names the nodes it left out")
    func mergedFields() throws {
        var hostile = HTTPResponseHead(version: .http1_1, status: .ok)
        for (name, value) in [
            ("Api-Version", "1.41"), ("Ostype", "linux"), ("Set-Cookie", "session=x"), ("Content-Encoding", "gzip"),
            ("X-PortainerAgent-Unreachable-Nodes", "nobody"), ("Portainer-Agent", "forged"), ("Content-Length", "9"),
        ] {
            hostile.headers.add(name: name, value: value)
        }
        let nodes = [ClusterNode(name: "here", isManager: true), ClusterNode(name: "member", isManager: false), ClusterNode(name: "liar", isManager: false)]
        // This node's engine is down: the head is the member's.
        let merged = Aggregator.merge(
            [.failure(ChannelError.ioOnClosedChannel), .success(CollectedResponse(head: hostile, body: ByteBuffer(string: "[1]"))),
             .success(CollectedResponse(head: hostile, body: ByteBuffer(string: "[1\"]")))],
            from: nodes, localIndex: 0, kind: .array, allocator: ByteBufferAllocator())
        #expect(merged.status == .ok)
        #expect(Set(merged.headers.map(\.name)) == ["Api-Version", "Ostype", "Content-Type"], "\(merged.headers)")
        #expect(merged.headers["Content-Type"] == ["application/json"])
        #expect(merged.unreachableNodes == ["here", "liar"])
        #expect(String(buffer: merged.body) == #"[1]"#)
    }

    /// Python's json reads what the part holds: one more element than the limit.
    @Test("a part of more than maximumItems elements is left out and named; the other parts are merged")
    func tooManyItems() throws {
        let body = "[" + String(repeating: "1,", count: JSONListMerger.maximumItems) + "1]"
        let python = try Command.run("python3", ["-c", "import json, sys; print(len(json.load(sys.stdin)))"], input: Data(body.utf8))
        #expect(Int(python.output.trimmingCharacters(in: .whitespacesAndNewlines)) == JSONListMerger.maximumItems + 1)
        let merged = JSONListMerger.mergeArrays([Part(nodeName: "many", body: Array(body.utf8)), Part(nodeName: "n", body: Array("[{}]".utf8))])
        #expect(merged.refused == [0])
        #expect(String(buffer: merged.body) == #"[{"Portainer":{"Agent":{"NodeName":"n"}}}]"#)
    }

    /// A million `{}` (3 MB) under a 253-byte node name would merge into 290 MB of tags:
    /// past the budget, so left out, while the same list under a short name fits. The
    /// budget is checked with the tag's real length, for arrays and volumes alike.
    @Test("parts are merged while the answer stays within maximumMergedBytes; one that would pass it is left out and named")
    func mergedBudget() throws {
        let long = String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 63) + "." + String(repeating: "c", count: 63) + "." + String(repeating: "d", count: 61)
        let count = 1_000_000
        let objects = "[" + String(repeating: "{},", count: count - 1) + "{}]"
        let arrays = JSONListMerger.mergeArrays([Part(nodeName: "short", body: Array(objects.utf8)), Part(nodeName: long, body: Array(objects.utf8))])
        #expect(arrays.refused == [1])
        // The smallest parts are taken first: 800,000 objects under the long name (233 MB
        // tagged) fit alone, but not before two ordinary lists, which are merged; it is
        // left out, wherever it stands.
        let huge = "[" + String(repeating: "{},", count: 799_999) + "{}]"
        let squeezed = JSONListMerger.mergeArrays([
            Part(nodeName: long, body: Array(huge.utf8)), Part(nodeName: "a", body: Array(objects.utf8)), Part(nodeName: "b", body: Array("[{}]".utf8)),
        ])
        #expect(squeezed.refused == [0])
        #expect(arrays.body.readableBytes <= JSONListMerger.maximumMergedBytes)
        // Python's json counts the items (Foundation's parser takes a minute on this in a debug build).
        func python(_ expression: String, _ body: ByteBuffer) throws -> Int? {
            let result = try Command.run("python3", ["-c", "import json, sys; d = json.load(sys.stdin); print(\(expression))"], input: Data(body.readableBytesView))
            return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(try python("len(d)", arrays.body) == count)
        let volumes = #"{"Volumes":\#(objects),"Warnings":null}"#
        let merged = JSONListMerger.mergeVolumes([Part(nodeName: long, body: Array(volumes.utf8)), Part(nodeName: "short", body: Array(volumes.utf8))])
        #expect(merged.refused == [0])
        #expect(try python("len(d['Volumes'])", merged.body) == count)
    }

    @Test("deep nesting is scanned without recursion")
    func deep() throws {
        let body = "[" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "]"
        let merged = JSONListMerger.mergeArrays([Part(nodeName: "n", body: Array(body.utf8))])
        #expect(merged.refused.isEmpty)
        #expect(merged.body.readableBytes == body.utf8.count)
    }
}
