import Foundation
import FuzzSupport
import NIOCore
import Proxy

// The merging of engine JSON in aggregation: JSONListMerger.mergeArrays and mergeVolumes
// on the answers of up to eight nodes. Input: the answers, separated by the byte 0x1E.
// Whatever the answers, the merge is valid JSON (RFC 8259, this fuzzer's StrictJSON); an answer
// is left out (refused) exactly when it is not valid JSON of the expected shape, and the merge
// holds every item of the others once, tagged with its node.

/// Node names with what JSON must escape: quotes, backslashes, control characters.
let nodeNames = ["node-1", "wörker \"2\"", "back\\slash", "tab\tand\nnewline\u{1}", "", "节点", "n7", "n8"]

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    var parts: [JSONListMerger.Part] = []
    while !input.isEmpty, parts.count < nodeNames.count {
        parts.append(.init(nodeName: nodeNames[parts.count], body: Array(input.field(separatedBy: 0x1E))))
    }
    checkArrays(parts)
    checkVolumes(parts)
    checkNodeDocument(parts)
    return 0
}

/// The fleet document (`nodeDocument`, which `Proxy.StrictJSON` guards) against this
/// fuzzer's own recursive reading of RFC 8259: every answer that is one object is
/// taken and the document is valid JSON; anything else is refused.
func checkNodeDocument(_ parts: [JSONListMerger.Part]) {
    for part in parts {
        let body = bytes(part.body)
        guard withinOracleDepth(body) else { continue }
        let first = body.first { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }
        let isObject = StrictJSON.isValid(body) && first == UInt8(ascii: "{")
        require(Proxy.StrictJSON.isObject(part.body) == isObject, "StrictJSON.isObject disagrees on \(text(body))")
    }
    let nodes = parts.map { JSONListMerger.NodePart(nodeName: $0.nodeName, role: "worker", body: $0.body) }
    guard let document = (try? JSONListMerger.nodeDocument(nodes, field: "HostInfo", unreachable: ["gone"])).map({ bytes($0.body) }) else {
        return require(!nodes.allSatisfy { Proxy.StrictJSON.isObject($0.body) }, "valid objects were refused")
    }
    require(StrictJSON.isValid(document), "the fleet document is not JSON: \(text(document))")
    // Parts checked once on arrival (the fleet route's way) make the same document.
    let checked = parts.compactMap { JSONListMerger.NodePart(nodeName: $0.nodeName, role: "worker", checking: $0.body) }
    require(checked.count == parts.count, "a part checked on arrival was refused, yet the document was made")
    let fromChecked = (try? JSONListMerger.nodeDocument(checked, field: "HostInfo", unreachable: ["gone"])).map({ bytes($0.body) })
    require(fromChecked == document, "parts checked on arrival made another document")
}

func checkArrays(_ parts: [JSONListMerger.Part]) {
    let result = JSONListMerger.mergeArrays(parts)
    let merged = bytes(result.body)
    let bodies = parts.map { bytes($0.body) }
    guard bodies.allSatisfy(withinOracleDepth) else { return }
    let lists = bodies.map { parse($0) as? [Any] }
    require(result.refused == lists.indices.filter { lists[$0] == nil }, "refused \(result.refused), not the parts that are not arrays: \(bodies.map(text))")
    guard let items = parse(merged) as? [Any] else { return require(false, "the merge is not a JSON array: \(text(merged))") }
    let taken = lists.indices.filter { lists[$0] != nil }
    require(items.count == taken.reduce(0) { $0 + lists[$1]!.count }, "\(items.count) items merged from \(lists.map { $0?.count ?? -1 })")
    checkTags(items, taken.map { lists[$0]! }, taken.map { parts[$0] })
}

func checkVolumes(_ parts: [JSONListMerger.Part]) {
    let result = JSONListMerger.mergeVolumes(parts)
    let merged = bytes(result.body)
    guard parts.allSatisfy({ withinOracleDepth(bytes($0.body)) }) else { return }
    require(parse(merged) is [String: Any], "the merge is not a JSON object: \(text(merged))")
    for (index, part) in parts.enumerated() where !result.refused.contains(index) {
        require(parse(bytes(part.body)) is [String: Any], "a part that is not a JSON object was taken: \(text(bytes(part.body)))")
    }
    var volumeLists: [[Any]] = []
    var warningCount = 0
    for part in parts {
        // The merger finds the keys as the engine writes them; answers where "Volumes" or
        // "Warnings" is repeated, escaped, or also a value are left out of this check.
        let body = bytes(part.body)
        guard let object = parse(body) as? [String: Any],
              occurrences(of: #""Volumes""#, in: body) == (object["Volumes"] == nil ? 0 : 1),
              occurrences(of: #""Warnings""#, in: body) == (object["Warnings"] == nil ? 0 : 1),
              let volumes = listOrNull(object["Volumes"]), let warnings = listOrNull(object["Warnings"]) else { return }
        volumeLists.append(volumes)
        warningCount += warnings.count
    }
    guard result.refused.isEmpty else { return require(false, "valid volume answers were refused: \(result.refused)") }
    guard let object = parse(merged) as? [String: Any], let volumes = object["Volumes"] as? [Any] else {
        return require(false, "the merge is not a volumes object: \(text(merged))")
    }
    require(volumes.count == volumeLists.reduce(0) { $0 + $1.count }, "\(volumes.count) volumes merged from \(volumeLists.map(\.count))")
    let warnings = listOrNull(object["Warnings"])
    require(warnings?.count == warningCount, "\(warnings?.count ?? -1) warnings merged from \(warningCount)")
    checkTags(volumes, volumeLists, parts)
}

/// Every object item carries the name of the node it came from; other items are unchanged.
func checkTags(_ items: [Any], _ lists: [[Any]], _ parts: [JSONListMerger.Part]) {
    var index = 0
    for (list, part) in zip(lists, parts) {
        for original in list {
            let item = items[index]
            index += 1
            // Engines never send a "Portainer" key; one that does gets a second, and which
            // of the two a JSON reader keeps is not specified.
            guard let object = original as? [String: Any], object["Portainer"] == nil else { continue }
            let tag = ((item as? [String: Any])?["Portainer"] as? [String: Any])?["Agent"] as? [String: Any]
            require(tag?["NodeName"] as? String == part.nodeName, "an item of \(part.nodeName.debugDescription) is tagged \(String(describing: tag))")
        }
    }
}

/// Whether this fuzzer's oracle can read `body`: it stops at its nesting limit, the
/// merger's check has none.
func withinOracleDepth(_ body: [UInt8]) -> Bool {
    body.count { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "{") } < StrictJSON.maximumDepth
}

/// A buffer's readable bytes (the merger reads and writes ByteBuffers).
func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

/// The value JSONSerialization reads from `bytes`, or nil when they are not strict JSON.
func parse(_ bytes: [UInt8]) -> Any? {
    guard StrictJSON.isValid(bytes) else { return nil }
    return try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
}

/// A missing key or null is an empty list; anything else but a list is not a valid answer.
func listOrNull(_ value: Any?) -> [Any]? {
    switch value {
    case nil, is NSNull: return []
    case let list as [Any]: return list
    default: return nil
    }
}

func occurrences(of needle: String, in bytes: [UInt8]) -> Int {
    let pattern = Array(needle.utf8)
    guard bytes.count >= pattern.count else { return 0 }
    return (0...(bytes.count - pattern.count)).filter { bytes[$0..<($0 + pattern.count)].elementsEqual(pattern) }.count
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(500), as: UTF8.self).debugDescription
}

runLibFuzzer(testOneInput)
