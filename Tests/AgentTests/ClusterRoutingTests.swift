import NIOCore
import NIOHTTP1
import Proxy
import Testing
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
        let merged = try JSONListMerger.mergeArrays([
            Part(nodeName: "n1", body: Array(#"[{"Id":"a","Size":12345678901234567890,"Names":["/x"]} , {}]"#.utf8)),
            Part(nodeName: "n\"2", body: Array("[ ]\n".utf8)),
            Part(nodeName: "n3", body: Array(#"[{"Id":"c","Label":"}]\"{"}]"#.utf8)),
        ])
        #expect(String(buffer: merged) ==
            #"[{"Id":"a","Size":12345678901234567890,"Names":["/x"],"Portainer":{"Agent":{"NodeName":"n1"}}},{"Portainer":{"Agent":{"NodeName":"n1"}}},{"Id":"c","Label":"}]\"{","Portainer":{"Agent":{"NodeName":"n3"}}}]"#)
    }

    @Test("a part is read from its buffer's reader index, as a decoder hands it over")
    func bufferSlices() throws {
        var body = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n[{ }, {\"Id\":\"x\"}]trailing")
        body.moveReaderIndex(forwardBy: 19)
        body = body.getSlice(at: body.readerIndex, length: body.readableBytes - 8)!
        let merged = try JSONListMerger.mergeArrays([Part(nodeName: "n1", body: body)])
        #expect(String(buffer: merged) ==
            #"[{ "Portainer":{"Agent":{"NodeName":"n1"}}},{"Id":"x","Portainer":{"Agent":{"NodeName":"n1"}}}]"#)
    }

    @Test("volumes keep Docker's shape; null lists count as empty")
    func volumes() throws {
        let merged = try JSONListMerger.mergeVolumes([
            Part(nodeName: "n1", body: Array(#"{"Volumes":[{"Name":"v1"}],"Warnings":null}"#.utf8)),
            Part(nodeName: "n2", body: Array(#"{"Volumes":null,"Warnings":["careful"]}"#.utf8)),
            Part(nodeName: "n3", body: Array(#"{"Warnings":[],"Volumes":[{"Name":"v3"}]}"#.utf8)),
        ])
        #expect(String(buffer: merged) ==
            #"{"Volumes":[{"Name":"v1","Portainer":{"Agent":{"NodeName":"n1"}}},{"Name":"v3","Portainer":{"Agent":{"NodeName":"n3"}}}],"Warnings":["careful"]}"#)
    }

    @Test("malformed lists are refused, not half merged", arguments: [
        "", "{", "[", "[1,", "[1 2]", "{\"a\":1}", "[\"unterminated]", "[}", "[1]]", "[]x",
    ])
    func malformed(body: String) {
        #expect(throws: JSONListMerger.Failure.self) {
            try JSONListMerger.mergeArrays([Part(nodeName: "n", body: Array(body.utf8))])
        }
    }

    @Test("deep nesting is scanned without recursion")
    func deep() throws {
        let body = "[" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "]"
        let merged = try JSONListMerger.mergeArrays([Part(nodeName: "n", body: Array(body.utf8))])
        #expect(merged.readableBytes == body.utf8.count)
    }
}
