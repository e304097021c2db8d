import Foundation
import Testing
@testable import Agent

/// The Range and If-Modified-Since headers of a download, read without a trap whatever
/// their numbers (issue 13, finding 5: one such header stopped the agent).
@Suite("Range headers")
struct ByteRangeTests {
    @Test("a range is clamped to the file, whatever its numbers", arguments: [
        ("bytes=0-9223372036854775807", ByteRange.part(0..<6)),
        ("bytes=0-9223372036854775808", .part(0..<6)),
        ("bytes=2-99999999999999999999999", .part(2..<6)),
        ("bytes=-9223372036854775808", .part(0..<6)),
        ("bytes=-9223372036854775807", .part(0..<6)),
        ("bytes=-6", .part(0..<6)),
        ("bytes=-7", .part(0..<6)),
        ("bytes=-1", .part(5..<6)),
        ("bytes=0-5", .part(0..<6)),
        ("bytes=5-5", .part(5..<6)),
        ("bytes=1-3", .part(1..<4)),
        ("bytes=1-", .part(1..<6)),
        ("Bytes=1-3", .part(1..<4)),
        ("bytes= 1-3 ,", .part(1..<4)),
    ])
    func clamped(header: String, expected: ByteRange) {
        #expect(ByteRange.parse(header, size: 6) == expected)
    }

    @Test("a range starting at or past the end cannot be satisfied (416)", arguments: [
        "bytes=6-", "bytes=6-10", "bytes=9223372036854775807-", "bytes=9223372036854775808-",
        "bytes=99999999999999999999999-99999999999999999999999", "bytes=-0",
    ])
    func unsatisfiable(header: String) {
        #expect(ByteRange.parse(header, size: 6) == .unsatisfiable)
    }

    @Test("a header that is not one well-formed byte range is ignored (the whole file)", arguments: [
        "bytes=5-3", "bytes=99999999999999999999999-5", "bytes=+1-3", "bytes=1-+3", "bytes=--1", "bytes=1", "bytes=",
        "bytes=a-b", "bytes=1-2,3-4", "items=0-1", "bytes = 1-2", "bytes=１-３", "bytes=1 -3",
    ])
    func ignored(header: String) {
        #expect(ByteRange.parse(header, size: 6) == .whole)
    }

    @Test("an empty file has no range to give")
    func emptyFile() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-9223372036854775808"] {
            #expect(ByteRange.parse(header, size: 0) == .unsatisfiable, "\(header)")
        }
    }

    @Test("the largest file size: the last byte, and past it")
    func largestSize() {
        let size = Int64.max
        #expect(ByteRange.parse("bytes=9223372036854775806-", size: size) == .part(size - 1..<size))
        #expect(ByteRange.parse("bytes=9223372036854775806-99999999999999999999", size: size) == .part(size - 1..<size))
        #expect(ByteRange.parse("bytes=9223372036854775807-", size: size) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-99999999999999999999", size: size) == .part(0..<size))
    }
}

@Suite("HTTP dates")
struct HTTPDateTests {
    @Test("IMF-fixdate is read and written as RFC 9110 shows it", arguments: [
        ("Sun, 06 Nov 1994 08:49:37 GMT", Int64(784_111_777)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
        ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
        ("Sat, 01 Jan 0000 00:00:00 GMT", -62_167_219_200),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
    ])
    func roundTrip(text: String, seconds: Int64) {
        #expect(HTTPDate.parse(text) == seconds)
        #expect(HTTPDate.format(seconds) == text)
    }

    @Test("anything but a valid IMF-fixdate is not a date (If-Modified-Since is then ignored)", arguments: [
        "Sun, 06 Nov -2147483648 08:49:37 GMT", "Sun, 06 Nov 2147483648 08:49:37 GMT", "Sun, 06 Nov 99999999999999999999 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 23:60:00 GMT", "Sun, 06 Nov 1994 23:59:61 GMT", "Fri, 31 Dec 9999 23:59:60 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 31 Nov 1994 08:49:37 GMT", "Tue, 29 Feb 1900 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, ０6 Nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun,  06 Nov 1994 08:49:37 GMT", "", "GMT",
    ])
    func invalid(text: String) {
        #expect(HTTPDate.parse(text) == nil)
    }

    @Test("any file time is written without a trap, even one past year 9999")
    func extremeTimes() {
        #expect(HTTPDate.format(.max) == "Sun, 04 Dec 292277026596 15:30:07 GMT")
        #expect(HTTPDate.format(.min) == "Sun, 27 Jan -292277022657 08:29:52 GMT")
        #expect(HTTPDate.format(253_402_300_800) == "Sat, 01 Jan 10000 00:00:00 GMT")
    }
}

/// The headers of finding 5 and their kin, sent to the real `deckhand` binary: each gets
/// the answer HTTP gives it, and the agent is still there to answer the next.
@Suite("Hostile numbers in headers, on the real binary")
struct HostileHeaderTests {
    @Test("GET /browse/get answers every hostile Range and If-Modified-Since, and the agent stays up")
    func downloadHeaders() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hostroot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data("hello\n".utf8).write(to: root.appendingPathComponent("a.txt"))
        defer { try? FileManager.default.removeItem(at: root) }
        let agent = try AgentProcess(environment: [
            "DECKHAND_ENGINE_SOCKET": try TestEngine.socket, "CAP_HOST_MANAGEMENT": "1", "DECKHAND_HOST_ROOT": root.path,
        ])
        defer { agent.stop() }
        let key = SigningKey()
        let cases: [(header: String, value: String, status: Int, body: String, contentRange: String?)] = [
            ("If-Modified-Since", "Sun, 06 Nov -2147483648 08:49:37 GMT", 200, "hello\n", nil),
            ("If-Modified-Since", "Sun, 06 Nov 99999999999999999999 08:49:37 GMT", 200, "hello\n", nil),
            ("If-Modified-Since", "Sun, 06 Nov 2147483648 08:49:37 GMT", 200, "hello\n", nil),
            ("Range", "bytes=0-9223372036854775807", 206, "hello\n", "bytes 0-5/6"),
            ("Range", "bytes=2-99999999999999999999999", 206, "llo\n", "bytes 2-5/6"),
            ("Range", "bytes=-9223372036854775808", 206, "hello\n", "bytes 0-5/6"),
            ("Range", "bytes=-9223372036854775807", 206, "hello\n", "bytes 0-5/6"),
            ("Range", "bytes=9223372036854775807-", 416, "", "bytes */6"),
            ("Range", "bytes=9223372036854775808-9223372036854775809", 416, "", "bytes */6"),
            ("Range", "bytes=99999999999999999999999-5", 200, "hello\n", nil),
            ("Range", "bytes=5-3", 200, "hello\n", nil),
        ]
        for item in cases {
            let reply = try Curl.request("GET", agent.baseURL + "/browse/get?path=/host/a.txt", headers: key.headers().merging([item.header: item.value]) { $1 })
            #expect(reply.status == item.status, "\(item.header): \(item.value)")
            if item.status != 416 { #expect(reply.text == item.body, "\(item.header): \(item.value)") }
            #expect(reply.headers["content-range"] == item.contentRange, "\(item.header): \(item.value)")
            #expect(agent.process.isRunning, "the agent died on \(item.header): \(item.value)")
        }
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }

    @Test("a Content-Length past a signed 64-bit length is a 400, one within it is answered, and the agent stays up")
    func contentLengths() throws {
        let agent = try AgentProcess(environment: ["DECKHAND_ENGINE_SOCKET": try TestEngine.socket])
        defer { agent.stop() }
        let key = SigningKey()
        let signature = key.headers().map { "\($0.key): \($0.value)\r\n" }.joined()
        // NIO's parser refuses what does not fit 64 bits; the agent's framing rule
        // (MessageFraming) refuses what does not fit an Int64 length.
        for length in ["99999999999999999999", "18446744073709551616", "18446744073709551615", "9223372036854775808", "-1", "1e3", "0x10"] {
            let connection = try LimitsTests.RawConnection(port: agent.port)
            try connection.send("GET /browse/get?path=/x HTTP/1.1\r\nHost: agent\r\n\(signature)Content-Length: \(length)\r\n\r\n")
            #expect(connection.closedByServer(within: 5), "Content-Length: \(length)")
            #expect(connection.received.hasPrefix("HTTP/1.1 400"), "Content-Length: \(length): \(connection.received.prefix(100))")
            #expect(agent.process.isRunning, "the agent died on Content-Length: \(length)")
        }
        // A length the HTTP parser takes is only a body nobody reads: the request is answered.
        for length in ["9223372036854775807", "4294967296"] {
            let connection = try LimitsTests.RawConnection(port: agent.port)
            try connection.send("GET /ping HTTP/1.1\r\nHost: agent\r\nContent-Length: \(length)\r\n\r\n")
            let deadline = Date().addingTimeInterval(5)
            while connection.received.isEmpty && Date() < deadline { usleep(20_000) }
            #expect(connection.received.hasPrefix("HTTP/1.1 204"), "Content-Length: \(length): \(connection.received.prefix(100))")
            #expect(agent.process.isRunning, "the agent died on Content-Length: \(length)")
        }
        #expect(try Curl.request("GET", agent.baseURL + "/ping").status == 204)
    }
}
