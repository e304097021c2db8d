import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Each member's last checked answer to one request, with the entity tag it came
/// with, so that a fan-out asks again conditionally (`If-None-Match`) and a member
/// whose answer has not changed sends a `304` instead of it: its answer is then not
/// sent, decrypted, read or checked again (`Aggregator.gather`'s `reusing`).
///
/// A member's `304` stands for the answer this cache holds for it: the one the same
/// member (node name and address) gave to the same request (URI) under that tag. So
/// a hostile member can only ever repeat its own earlier, checked answer. A `304` to
/// a request that was not conditional is no answer. Bounded: answers larger than
/// `maximumAnswerBytes` are not kept, and past `maximumBytes` or `maximumEntries`
/// the oldest kept answers go first (a departed member's among them, in time).
public final class MemberAnswerCache: Sendable {
    public struct Key: Hashable, Sendable {
        public var node: String
        public var host: String
        public var port: Int
        public var uri: String
    }

    /// An answer kept, with its tag.
    public struct Entry: Sendable {
        public var entityTag: String
        public var answer: CollectedResponse
        fileprivate var stamp: UInt64
        fileprivate var bytes: Int { answer.body.readableBytes + entityTag.utf8.count + 64 }
    }

    public let maximumAnswerBytes: Int
    public let maximumBytes: Int
    public let maximumEntries: Int

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var nextStamp: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    public init(maximumAnswerBytes: Int = 1 << 20, maximumBytes: Int = 16 << 20, maximumEntries: Int = 4096) {
        self.maximumAnswerBytes = maximumAnswerBytes
        self.maximumBytes = maximumBytes
        self.maximumEntries = maximumEntries
    }

    public var count: Int { state.withLockedValue { $0.entries.count } }

    public func entry(for key: Key) -> Entry? {
        state.withLockedValue { $0.entries[key] }
    }

    /// Keeps `answer` (a `200` whose body `checkObject()` found to be one object) as
    /// `key`'s, when it carries a usable tag and is small enough; otherwise forgets
    /// what was kept for `key`, which no longer stands for the member's answer.
    public func keep(_ answer: CollectedResponse, for key: Key) {
        guard answer.head.status == .ok, answer.checkedObject != nil, answer.body.readableBytes <= maximumAnswerBytes,
            let tag = answer.head.headers.first(name: "ETag"), Self.isUsable(tag)
        else {
            forget(key)
            return
        }
        if let kept = entry(for: key), kept.entityTag == tag { return }
        let answer = answer.compacted()
        state.withLockedValue { state in
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.bytes }
            let entry = Entry(entityTag: tag, answer: answer, stamp: state.nextStamp)
            state.nextStamp += 1
            state.entries[key] = entry
            state.bytes += entry.bytes
            while state.bytes > maximumBytes || state.entries.count > maximumEntries,
                let oldest = state.entries.min(by: { $0.value.stamp < $1.value.stamp })
            {
                state.entries.removeValue(forKey: oldest.key)
                state.bytes -= oldest.value.bytes
            }
        }
    }

    public func forget(_ key: Key) {
        state.withLockedValue { state in
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.bytes }
        }
    }

    /// A tag this agent sends back as it came: a quoted string (RFC 9110 entity-tag,
    /// optionally weak) of visible ASCII, at most 130 bytes.
    static func isUsable(_ tag: String) -> Bool {
        var bytes = Substring(tag).utf8[...]
        if bytes.starts(with: "W/".utf8) { bytes = bytes.dropFirst(2) }
        guard bytes.count >= 2, bytes.count <= 128, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else { return false }
        return bytes.dropFirst().dropLast().allSatisfy { $0 == 0x21 || (0x23...0x7E).contains($0) }
    }
}
