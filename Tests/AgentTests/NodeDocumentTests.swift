import Foundation
import NIOCore
import Testing
@testable import Agent
@testable import Proxy
import TestCommands

/// The fleet document: each node's object copied through unchanged, read back by
/// Foundation's JSON parser (not ours); a node's answer that is not one object refused.
@Suite("One document of every node's object")
struct NodeDocumentTests {
    static func parse(_ buffer: ByteBuffer) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any] ?? [:]
    }

    @Test func nodesAndUnreachableNodes() throws {
        let parts = [
            JSONListMerger.NodePart(nodeName: "node1", role: "manager", body: ByteBuffer(string: #" {"PCIDevices":[{"Vendor":"Intel \"8086\""}],"N":1.50e3} "#)),
            JSONListMerger.NodePart(nodeName: "nöde\"2", role: "worker", body: ByteBuffer(string: "{}")),
        ]
        let document = try Self.parse(JSONListMerger.nodeDocument(parts, field: "HostInfo", unreachable: ["node3", "node4"]).body)
        let nodes = document["Nodes"] as? [[String: Any]] ?? []
        #expect(nodes.map { $0["NodeName"] as? String } == ["node1", "nöde\"2"])
        #expect(nodes.map { $0["Role"] as? String } == ["manager", "worker"])
        let first = nodes.first?["HostInfo"] as? [String: Any]
        #expect(((first?["PCIDevices"] as? [[String: Any]])?.first?["Vendor"] as? String) == "Intel \"8086\"")
        #expect(first?["N"] as? Double == 1500)
        #expect(document["UnreachableNodes"] as? [String] == ["node3", "node4"])
        // The node's bytes are copied exactly (number spelling included).
        let text = String(buffer: try JSONListMerger.nodeDocument(Array(parts.prefix(1)), field: "HostInfo", unreachable: []).body)
        #expect(text.contains(#""N":1.50e3"#))
    }

    /// Answers of 128 MiB, 127.9 MiB and 256 KiB: all three pass the 256 MiB budget.
    /// The smallest go first, so the largest is named unreachable and the others keep
    /// their order; taken in node order, the 256 KiB one would have been left out.
    /// (Before the budget, parts past 4 GiB in all were a trap sizing the buffer.)
    @Test func partsPastTheBudgetAreNamedUnreachable() throws {
        func answer(_ bytes: Int) -> ByteBuffer { ByteBuffer(string: #"{"a":""# + String(repeating: "x", count: bytes) + #""}"#) }
        let parts = [
            JSONListMerger.NodePart(nodeName: "n1", role: "worker", body: answer(128 << 20)),
            JSONListMerger.NodePart(nodeName: "n2", role: "worker", body: answer((128 << 20) - (100 << 10))),
            JSONListMerger.NodePart(nodeName: "small", role: "manager", body: answer(256 << 10)),
        ]
        let (body, unreachable) = try JSONListMerger.nodeDocument(parts, field: "HostInfo", unreachable: ["gone"])
        #expect(unreachable == ["gone", "n1"])
        #expect(body.readableBytes <= JSONListMerger.maximumMergedBytes)
        let document = try Self.parse(body)
        #expect((document["Nodes"] as? [[String: Any]])?.map { $0["NodeName"] as? String } == ["n2", "small"])
        #expect(document["UnreachableNodes"] as? [String] == ["gone", "n1"])
    }

    @Test func anEmptyFleet() throws {
        let document = try Self.parse(JSONListMerger.nodeDocument([], field: "HostInfo", unreachable: ["a"]).body)
        #expect((document["Nodes"] as? [Any])?.isEmpty == true)
        #expect(document["UnreachableNodes"] as? [String] == ["a"])
    }

    @Test(arguments: ["[]", "\"x\"", "{", "{}{}", "{} x", "", "null", "{\"a\":}", "{\"a\":[1,]}"])
    func aNodeAnswerThatIsNotOneObjectIsRefused(_ body: String) {
        let part = JSONListMerger.NodePart(nodeName: "n", role: "worker", body: ByteBuffer(string: body))
        #expect(throws: JSONListMerger.Failure.self) {
            _ = try JSONListMerger.nodeDocument([part], field: "HostInfo", unreachable: [])
        }
    }

    /// The fleet route checks each answer once, as it arrives: the document it then
    /// makes is the one `nodeDocument` makes checking the answers itself.
    @Test func partsCheckedOnArrivalMakeTheSameDocument() throws {
        let answers = [#" {"PCIDevices":[{"Vendor":"Intel \"8086\""}],"N":1.50e3} "#, "{}", "\n{\"a\":[1,2]}\t"]
        let checked = try answers.enumerated().map {
            try #require(JSONListMerger.NodePart(nodeName: "node\($0.offset)", role: "worker", checking: ByteBuffer(string: $0.element)))
        }
        let plain = answers.enumerated().map { JSONListMerger.NodePart(nodeName: "node\($0.offset)", role: "worker", body: ByteBuffer(string: $0.element)) }
        let document = try JSONListMerger.nodeDocument(checked, field: "HostInfo", unreachable: ["x"]).body
        #expect(document == (try JSONListMerger.nodeDocument(plain, field: "HostInfo", unreachable: ["x"]).body))
        #expect(try Self.parse(document)["Nodes"] as? [Any] != nil)
        for body in ["[]", "\"x\"", "{", "{}{}", "{} x", "", "null", "{\"a\":}", "{\"a\":[1,]}"] {
            #expect(JSONListMerger.NodePart(nodeName: "n", role: "worker", checking: ByteBuffer(string: body)) == nil, "\(body)")
        }
    }

    /// Checked where they arrive (on a member's loop, `CollectedResponse.checkObject`),
    /// the answers make the same document again; an answer whose body changed after its
    /// check is checked anew, never copied by a range found in another body.
    @Test func answersCheckedWhereTheyArriveMakeTheSameDocument() throws {
        let answers = [#" {"PCIDevices":[{"Vendor":"Intel \"8086\""}],"N":1.50e3} "#, "{}", "\n{\"a\":[1,2]}\t"]
        let plain = answers.enumerated().map { JSONListMerger.NodePart(nodeName: "node\($0.offset)", role: "worker", body: ByteBuffer(string: $0.element)) }
        let arrived = try answers.enumerated().map { item in
            var answer = CollectedResponse(head: .init(version: .http1_1, status: .ok), body: ByteBuffer(string: item.element))
            let isObject = answer.checkObject()
            #expect(isObject && answer.checkedObject != nil)
            return try #require(JSONListMerger.NodePart(nodeName: "node\(item.offset)", role: "worker", answer: answer))
        }
        #expect(try JSONListMerger.nodeDocument(arrived, field: "HostInfo", unreachable: ["x"])
                == (try JSONListMerger.nodeDocument(plain, field: "HostInfo", unreachable: ["x"])))

        var changed = CollectedResponse(head: .init(version: .http1_1, status: .ok), body: ByteBuffer(string: "{}"))
        let wasObject = changed.checkObject()
        #expect(wasObject)
        changed.body = ByteBuffer(string: "{\"a\":")
        #expect(changed.checkedObject == nil)
        #expect(JSONListMerger.NodePart(nodeName: "n", role: "worker", answer: changed) == nil)
        var refused = CollectedResponse(head: .init(version: .http1_1, status: .ok), body: ByteBuffer(string: "[1]"))
        let refusedIsObject = refused.checkObject()
        #expect(!refusedIsObject)
        #expect(JSONListMerger.NodePart(nodeName: "n", role: "worker", answer: refused) == nil)
    }

    /// The fleet route checks each node's answer fully before copying it (the merger's
    /// scan only balances brackets): a node that answers invalid JSON is named, not copied.
    @Test(arguments: ["{\"a\":}", "{\"a\" 1}", "{\"a\":[1,]}", "{\"a\":tru}", "[]", String(repeating: "[", count: 100_000)])
    func aNodeAnswerThatIsNotValidJSONIsNamedNotCopied(_ body: String) throws {
        let good = CollectedResponse(head: .init(version: .http1_1, status: .ok), body: ByteBuffer(string: #"{"PCIDevices":[]}"#))
        let bad = CollectedResponse(head: .init(version: .http1_1, status: .ok), body: ByteBuffer(string: body))
        let response = GetClusterHostInfo.document([("node1", "manager", .success(good)), ("node2", "worker", .success(bad))])
        #expect(response.status == .ok)
        #expect(response.headers[AgentHeaderName.unreachableNodes] == ["node2"])
        let document = try Self.parse(response.bodyBuffer ?? ByteBuffer())
        #expect((document["Nodes"] as? [[String: Any]])?.map { $0["NodeName"] as? String } == ["node1"])
        #expect(document["UnreachableNodes"] as? [String] == ["node2"])
    }
}

/// The strict check against Python's json module, which refuses what RFC 8259 does.
@Suite("Strict JSON, against Python's json")
struct StrictJSONTests {
    static let samples = [
        #"{}"#, #" {"a":1} "#, #"{"a":[1,2,{"b":null}],"c":"\u00e9\n"}"#, #"{"n":-0.5e+10,"m":0,"k":1E2}"#,
        #"{"a":[1,]}"#, #"{"a":}"#, #"{"a" 1}"#, #"{"a":tru}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":.5}"#, #"{"a":-}"#,
        #"{"a":"\x"}"#, #"{"a":"\u12"}"#, "{\"a\":\"\t\"}", #"{"a":1,}"#, #"{,}"#, #"{"a":[}"#, #"{"a":{]}"#, #"[]"#, #"{} {}"#,
        #"{"a":true,"b":false,"c":null}"#, #"{"a":nul}"#, #"{'a':1}"#, #"{"a":1e}"#, #"{"a":+1}"#, #"{"a":[[[[]]]]}"#,
    ]

    /// Strings are skipped eight bytes at a time: each byte that ends, escapes or breaks
    /// a string (and some that do not) at every place in and across a word, and strings
    /// cut short at every length, so that a word read near the end is tried too.
    static var stringSamples: [String] {
        let inside = ["\"", "\\\"", "\\\\", "\\u00e9", "\\x", "\\", "\\u12", "\u{1}", "\u{1F}", "\t", "\u{7F}", "é", "节", " "]
        var samples: [String] = []
        for piece in inside {
            for before in 0...17 {
                samples.append(#"{"k":""# + String(repeating: "a", count: before) + piece + String(repeating: "b", count: 17 - before) + #""}"#)
            }
        }
        for length in 0...17 {
            samples.append(#"{"k":""# + String(repeating: "c", count: length))
            samples.append(#"{"k":""# + String(repeating: "c", count: length) + "\"")
        }
        return samples
    }

    @Test func agreesWithPython() throws {
        let samples = Self.samples + Self.stringSamples
        let script = """
        import json, sys
        for line in sys.stdin.read().split("\\n\\u0000\\n"):
            try:
                v = json.loads(line)
                print("1" if isinstance(v, dict) else "0")
            except ValueError:
                print("0")
        """
        let input = samples.joined(separator: "\n\u{0}\n")
        let python = try Command.run("python3", ["-c", script], input: Data(input.utf8))
        let expected = python.output.split(separator: "\n").map { $0 == "1" }
        #expect(expected.count == samples.count)
        #expect(expected.contains(true) && expected.contains(false))
        for (sample, truth) in zip(samples, expected) {
            #expect(StrictJSON.isObject(ByteBuffer(string: sample)) == truth, "\(sample)")
            // The object found is the sample without the whitespace around it.
            let range = StrictJSON.objectRange(ByteBuffer(string: sample))
            #expect((range != nil) == truth, "\(sample)")
            if let range {
                #expect(String(decoding: Array(sample.utf8)[range], as: UTF8.self) == sample.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
    }

    /// Strings' bytes as UTF-8, against Python's strict decoder (then its JSON reader):
    /// random runs of high bytes and ASCII, some cut short before the closing quote,
    /// some at the end of a word of eight.
    @Test func utf8AgreesWithPython() throws {
        var generator = SystemRandomNumberGenerator()
        let interesting: [UInt8] = [0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var samples: [[UInt8]] = (0..<4000).map { _ in
            let padding = Int.random(in: 0...9, using: &generator)
            let run = (0..<Int.random(in: 1...6, using: &generator)).map { _ in
                Bool.random(using: &generator) ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0x80...0xFF, using: &generator)
            }
            return Array(#"{"k":""#.utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: padding) + run + Array(#"x"}"#.utf8)
        }
        // And well-formed ones: scalars of every length, surrogates and U+10FFFF's neighbours excluded by construction.
        for _ in 0..<1000 {
            let ranges: [ClosedRange<UInt32>] = [0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
            let scalars = (0..<Int.random(in: 1...4, using: &generator)).map { _ in
                Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &generator)!, using: &generator))!
            }
            let text = String(String.UnicodeScalarView(scalars))
            samples.append(Array(#"{"k":""#.utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: Int.random(in: 0...9, using: &generator)) + Array(text.utf8) + Array(#""}"#.utf8))
        }
        let script = """
        import json, sys
        for line in sys.stdin.read().split():
            try:
                print("1" if isinstance(json.loads(bytes.fromhex(line).decode("utf-8")), dict) else "0")
            except ValueError:
                print("0")
        """
        let input = samples.map { $0.map { String(format: "%02x", $0) }.joined() }.joined(separator: "\n")
        let python = try Command.run("python3", ["-c", script], input: Data(input.utf8))
        let expected = python.output.split(separator: "\n").map { $0 == "1" }
        #expect(expected.count == samples.count)
        #expect(expected.contains(true) && expected.contains(false))
        for (sample, truth) in zip(samples, expected) {
            #expect(StrictJSON.isObject(ByteBuffer(bytes: sample)) == truth, "\(sample.map { String(format: "%02x", $0) }.joined())")
        }
    }

    /// The word test against its definition: every byte value at every place in a word
    /// of plain string bytes (ASCII, and UTF-8's high bytes), alone and with a stop
    /// after it (a borrow must not hide or move the first).
    @Test func wordTestFindsTheFirstByteThatEndsOrEscapesAString() {
        func stops(_ byte: UInt8) -> Bool { byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 }
        for background: UInt8 in [UInt8(ascii: "a"), 0xFF, 0x80, 0x20, 0x21] {
            for place in 0..<8 {
                for value in UInt8.min...UInt8.max {
                    let laters: [(place: Int, value: UInt8)] = [(7, 0x00), (7, UInt8(ascii: "\"")), (place + 1, 0x1F)].filter { $0.place > place && $0.place < 8 }
                    for later in [nil] + laters.map(Optional.some) {
                        var bytes = [UInt8](repeating: background, count: 8)
                        bytes[place] = value
                        if let later { bytes[later.place] = later.value }
                        let word = UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                        let expected = bytes.firstIndex(where: stops)
                        #expect(StrictJSON.firstStringStop(in: word) == expected, "\(bytes)")
                    }
                }
            }
        }
    }

    @Test func deepNestingCostsNoStack() {
        let deep = "{\"a\":" + String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000) + "}"
        #expect(StrictJSON.isObject(ByteBuffer(string: deep)))
        #expect(!StrictJSON.isObject(ByteBuffer(string: "{\"a\":" + String(repeating: "[", count: 1_000_000) + "}")))
    }
}
