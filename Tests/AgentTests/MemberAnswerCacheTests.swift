import NIOCore
import NIOHTTP1
import Testing
@testable import Proxy

/// What the fleet route keeps of members' answers: only checked objects with a plain
/// tag, each in a buffer of its own, and never more than its bounds.
@Suite("Members' answers kept for conditional requests")
struct MemberAnswerCacheTests {
    static func key(_ node: String, uri: String = "/v2/host/info") -> MemberAnswerCache.Key {
        MemberAnswerCache.Key(node: node, host: "10.0.0.1", port: 9001, uri: uri)
    }

    static func answer(_ body: ByteBuffer, tag: String?, status: HTTPResponseStatus = .ok) -> CollectedResponse {
        var headers = HTTPHeaders()
        if let tag { headers.add(name: "ETag", value: tag) }
        var answer = CollectedResponse(head: HTTPResponseHead(version: .http1_1, status: status, headers: headers), body: body)
        answer.checkObject()
        return answer
    }

    @Test("only a checked 200 object with a quoted tag of visible ASCII is kept; anything else forgets what was")
    func whatIsKept() {
        let cache = MemberAnswerCache()
        let node = Self.key("a")
        cache.keep(Self.answer(ByteBuffer(string: #"{"A":1}"#), tag: #""v1""#), for: node)
        #expect(cache.entry(for: node)?.entityTag == #""v1""#)
        #expect(cache.entry(for: Self.key("a", uri: "/v2/host/info?filters=x")) == nil)
        for (body, tag, status) in [
            (#"{"A":1}"#, nil, HTTPResponseStatus.ok), (#"{"A":1}]"#, #""v2""#, .ok), (#"{"A":1}"#, #""v2""#, .notFound),
            (#"{"A":1}"#, "v2", .ok), (#"{"A":1}"#, #""v 2""#, .ok), (#"{"A":1}"#, #""v"2""#, .ok), (#"{"A":1}"#, "\"" + String(repeating: "a", count: 127) + "\"", .ok),
        ] {
            cache.keep(Self.answer(ByteBuffer(string: #"{"A":1}"#), tag: #""v1""#), for: node)
            cache.keep(Self.answer(ByteBuffer(string: body), tag: tag, status: status), for: node)
            #expect(cache.entry(for: node) == nil, "\(body) \(tag ?? "no tag") \(status)")
        }
        cache.keep(Self.answer(ByteBuffer(string: #"{"A":2}"#), tag: #"W/"v2""#), for: node)
        #expect(cache.entry(for: node)?.entityTag == #"W/"v2""#)
        #expect(cache.entry(for: node).map { String(buffer: $0.answer.body) } == #"{"A":2}"#)
    }

    @Test("a kept answer holds its own bytes, not the read buffer it came in")
    func compacted() {
        let cache = MemberAnswerCache()
        var read = ByteBuffer(string: String(repeating: " ", count: 60_000))
        read.writeString(#"{"A":1}"#)
        read.moveReaderIndex(forwardBy: 60_000)
        cache.keep(Self.answer(read, tag: #""v1""#), for: Self.key("a"))
        let kept = cache.entry(for: Self.key("a"))?.answer
        #expect(kept?.body.capacity ?? .max < 1024)
        #expect(kept.map { String(buffer: $0.body) } == #"{"A":1}"#)
        #expect(kept?.checkedObject != nil)
    }

    @Test("bounded: an answer over the limit is not kept, and past the total the oldest go first")
    func bounded() {
        let cache = MemberAnswerCache(maximumAnswerBytes: 1000, maximumBytes: 5000, maximumEntries: 100)
        cache.keep(Self.answer(ByteBuffer(string: #"{"A":""# + String(repeating: "a", count: 1000) + #""}"#), tag: #""big""#), for: Self.key("big"))
        #expect(cache.entry(for: Self.key("big")) == nil)
        let item = #"{"A":""# + String(repeating: "a", count: 900) + #""}"#
        for index in 0..<10 { cache.keep(Self.answer(ByteBuffer(string: item), tag: #""v""#), for: Self.key("n\(index)")) }
        #expect(cache.count <= 5)
        #expect(cache.entry(for: Self.key("n9")) != nil)
        #expect(cache.entry(for: Self.key("n0")) == nil)
        let few = MemberAnswerCache(maximumEntries: 3)
        for index in 0..<10 { few.keep(Self.answer(ByteBuffer(string: "{}"), tag: #""v""#), for: Self.key("n\(index)")) }
        #expect(few.count == 3)
        #expect((7..<10).allSatisfy { few.entry(for: Self.key("n\($0)")) != nil })
    }
}
