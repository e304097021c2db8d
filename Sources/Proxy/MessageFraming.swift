import NIOHTTP1

/// The one framing rule for every message the agent passes on (RFC 9112 §6).
///
/// NIO's decoder reads `Transfer-Encoding` leniently (any case, the last coding of
/// several headers, also on HTTP/1.0), while its encoder frames a body as chunked only
/// when the first header is exactly `chunked` on HTTP/1.1. A message passed on with
/// its own headers would then be decoded one way and re-encoded another, and the
/// upstream would read the rest of the body as a new request (request smuggling).
/// So a message must be framed unambiguously, and its framing header is rewritten
/// to the one spelling the encoder and every peer read the same way.
public enum MessageFraming {
    /// How a message's body is delimited.
    public enum Body: Equatable, Sendable {
        /// No `Content-Length` and no `Transfer-Encoding`: a request without a body.
        case none
        case length(Int64)
        case chunked
    }

    /// Why a message is refused.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// The body framing of a request, or why it is ambiguous: `Transfer-Encoding` on
    /// HTTP/1.0, more than one `Transfer-Encoding` field or coding, a coding other than
    /// `chunked`, `Transfer-Encoding` together with `Content-Length`, and a
    /// `Content-Length` that is not one decimal number.
    /// Also ambiguous: `Upgrade` without the `upgrade` option in `Connection`. The
    /// agent's decoder (llhttp) then reads what follows the head as HTTP, and an
    /// engine, which switches on `Upgrade` alone, as the upgraded stream.
    public static func requestBody(of head: HTTPRequestHead) -> Result<Body, Problem> {
        if head.headers.contains(name: "upgrade"),
            !head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }) {
            return .failure(Problem("Upgrade without Connection: Upgrade"))
        }
        return body(headers: head.headers, version: head.version)
    }

    /// The same rule for a response from an upstream (engine or peer agent).
    public static func responseBody(of head: HTTPResponseHead) -> Result<Body, Problem> {
        body(headers: head.headers, version: head.version)
    }

    static func body(headers: HTTPHeaders, version: HTTPVersion) -> Result<Body, Problem> {
        var transferEncodings = 0
        var chunked = false
        var length: Int64?
        for (name, value) in headers {
            if name.utf8.count == 17, name.lowercased() == "transfer-encoding" {
                transferEncodings += 1
                chunked = value.trimmingHTTPSpaces.lowercased() == "chunked"
            } else if name.utf8.count == 14, name.lowercased() == "content-length" {
                guard let parsed = decimal(value.trimmingHTTPSpaces) else {
                    return .failure(Problem("Content-Length is not a decimal number"))
                }
                if let length, length != parsed {
                    return .failure(Problem("conflicting Content-Length values"))
                }
                length = parsed
            }
        }
        guard transferEncodings > 0 else { return .success(length.map(Body.length) ?? .none) }
        guard version.major == 1, version.minor >= 1 else {
            return .failure(Problem("Transfer-Encoding is not allowed on HTTP/1.0"))
        }
        guard transferEncodings == 1, chunked else {
            return .failure(Problem("Transfer-Encoding must be exactly one 'chunked'"))
        }
        guard length == nil else {
            return .failure(Problem("Transfer-Encoding and Content-Length together"))
        }
        return .success(.chunked)
    }

    /// `headers` with a chunked body's framing header in the one spelling NIO's encoder
    /// (and any peer) frames as chunked. Call only on a message `body` accepted.
    public static func normalized(_ headers: HTTPHeaders, body: Body) -> HTTPHeaders {
        guard body == .chunked, headers.first(name: "transfer-encoding") != "chunked" else { return headers }
        var headers = headers
        headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        return headers
    }

    /// Whether a response has no body whatever its headers say (RFC 9112 §6.3): an
    /// answer to `HEAD`, an interim (1xx) answer, a 204 or a 304. Nothing is waited for
    /// after its head.
    public static func isBodiless(_ status: HTTPResponseStatus, answering method: HTTPMethod) -> Bool {
        method == .HEAD || status.code < 200 || status.code == 204 || status.code == 304
    }

    /// Whether the sender of a message keeps its connection open afterwards, by its
    /// headers (RFC 9112 §9.3): HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`. Not NIO's `isKeepAlive` of a decoded head: that is
    /// llhttp's verdict, which says "close" for an answer to `HEAD` without a length
    /// (Podman's `HEAD /_ping`), though such an answer has no body to end.
    public static func keepsAlive(_ headers: HTTPHeaders, version: HTTPVersion) -> Bool {
        let tokens = headers[canonicalForm: "connection"].map { $0.lowercased() }
        if tokens.contains("close") { return false }
        return version.major == 1 && version.minor >= 1 || tokens.contains("keep-alive")
    }

    /// A response relayed to a client, framed so that the client can tell where it ends.
    public struct Relayed: Equatable, Sendable {
        public var head: HTTPResponseHead
        /// The body ends when the client's connection does, and `head` says so with
        /// `Connection: close`: the connection must close after it.
        public var endsWithConnection: Bool
    }

    /// How an upstream's response `head` (accepted by `responseBody` as `body`) goes on
    /// to a client that sent an HTTP `clientVersion` request with `method`:
    /// - a length or chunked body goes as framed, chunked in the one spelling (`normalized`)
    ///   (to an HTTP/1.0 client, which cannot read chunked, as the next case);
    /// - a bodiless answer (`isBodiless`) goes with no framing the encoder would act on
    ///   (a `Transfer-Encoding` there would make it write a last chunk that no client reads);
    /// - a body that ends when the upstream closes (neither length nor chunked) is chunked
    ///   for an HTTP/1.1 client, which keeps its connection; an HTTP/1.0 client gets it
    ///   until the connection closes, with `Connection: close` said out loud. Never a
    ///   silent close the client cannot tell from a failure.
    public static func relayed(_ head: HTTPResponseHead, body: Body, method: HTTPMethod, clientVersion: HTTPVersion) -> Relayed {
        var head = head
        if isBodiless(head.status, answering: method) {
            head.headers.remove(name: "transfer-encoding")
            return Relayed(head: head, endsWithConnection: false)
        }
        let readsChunked = clientVersion.major == 1 && clientVersion.minor >= 1
        switch body {
        case .length:
            return Relayed(head: head, endsWithConnection: false)
        case .chunked where readsChunked:
            head.headers = normalized(head.headers, body: body)
            return Relayed(head: head, endsWithConnection: false)
        case .none where readsChunked:
            head.version = .http1_1
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
            return Relayed(head: head, endsWithConnection: false)
        case .none, .chunked:
            head.headers.remove(name: "transfer-encoding")
            head.headers.replaceOrAdd(name: "Connection", value: "close")
            return Relayed(head: head, endsWithConnection: true)
        }
    }

    /// A non-negative decimal that fits an `Int64`: ASCII digits only, no sign.
    static func decimal(_ text: Substring) -> Int64? {
        guard !text.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in text.utf8 {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = times.addingReportingOverflow(Int64(byte - 0x30))
            guard !overflowTimes, !overflowSum else { return nil }
            value = sum
        }
        return value
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (HTTP's optional white space).
    var trimmingHTTPSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
