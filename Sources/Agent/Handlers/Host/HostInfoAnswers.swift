import ASCIIText
import Crypto
import Hardware
import NIOCore
import Synchronization

/// This node's `/host/info` answers as sent, encoded once per collection of the
/// inventory (`HostInfoCache.Snapshot`), filter and node name, each with its entity
/// tag: the first 128 bits of the body's SHA-256, so the tag changes exactly when the
/// bytes do (and stays the same across a re-collection that found nothing new, or a
/// restart). A warm request then costs a lock and a look-up, on the event loop; one
/// with `If-None-Match` naming the tag gets a `304` (`Aggregator.gather` asks so).
///
/// Bounded: filters are the client's to choose, so at most `maximumEntries` answers
/// are kept (those of an older collection go first, then any), and none larger than
/// `maximumAnswerBytes`.
final class HostInfoAnswers: Sendable {
    struct Answer: Sendable {
        let body: ByteBuffer
        let entityTag: String
    }

    private struct Key: Hashable {
        var filter: HostInfoFilter
        var nodeName: String
    }

    private struct Kept {
        var collection: UInt64
        var answer: Answer
    }

    let maximumEntries: Int
    let maximumAnswerBytes: Int
    private let kept = Mutex<[Key: Kept]>([:])

    init(maximumEntries: Int = 16, maximumAnswerBytes: Int = 4 << 20) {
        self.maximumEntries = maximumEntries
        self.maximumAnswerBytes = maximumAnswerBytes
    }

    /// The answer already encoded for `snapshot`, `filter` and `nodeName`, if any.
    func answer(for snapshot: HostInfoCache.Snapshot, _ filter: HostInfoFilter, nodeName: String) -> Answer? {
        kept.withLock { kept in
            guard let entry = kept[Key(filter: filter, nodeName: nodeName)], entry.collection == snapshot.collection else { return nil }
            return entry.answer
        }
    }

    /// Encodes the answer for `snapshot`, `filter` and `nodeName`, and keeps it.
    func encode(_ snapshot: HostInfoCache.Snapshot, _ filter: HostInfoFilter, nodeName: String) throws -> Answer {
        let body = try AgentJSON.encode(filter.apply(to: snapshot.value, nodeName: nodeName))
        let answer = Answer(body: ByteBuffer(bytes: body), entityTag: Self.entityTag(of: body))
        guard body.count <= maximumAnswerBytes else { return answer }
        let key = Key(filter: filter, nodeName: nodeName)
        kept.withLock { kept in
            if kept[key] == nil, kept.count >= maximumEntries {
                kept = kept.filter { $0.value.collection >= snapshot.collection }
                if kept.count >= maximumEntries, let any = kept.keys.first { kept.removeValue(forKey: any) }
            }
            kept[key] = Kept(collection: snapshot.collection, answer: answer)
        }
        return answer
    }

    /// A strong entity tag of `body`: `"` + 32 hex digits of its SHA-256 + `"`.
    static func entityTag(of body: [UInt8]) -> String {
        "\"" + HexEncoding.encode(SHA256.hash(data: body).prefix(16)) + "\""
    }

    /// Whether the `If-None-Match` list elements `conditions` (split and trimmed, as
    /// `HTTPHeaders[canonicalForm:]` gives them) name `entityTag` (weak comparison,
    /// RFC 9110 13.1.2: `W/` is ignored), or are `*`.
    static func matches(_ conditions: [Substring], entityTag: String) -> Bool {
        conditions.contains { condition in
            condition == "*" || (condition.hasPrefix("W/") ? condition.dropFirst(2) : condition) == entityTag[...]
        }
    }
}
