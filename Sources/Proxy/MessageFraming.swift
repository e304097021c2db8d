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
    public static func requestBody(of head: HTTPRequestHead) -> Result<Body, Problem> {
        body(headers: head.headers, version: head.version)
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
